import { defineConfig } from "prisma/config"

// The service's schema and migrations (top-level prisma/). The URL is read
// lazily so that `prisma generate` works without a database.
export default defineConfig({
  schema: "prisma/schema.prisma",
  migrations: { path: "prisma/migrations" },
  datasource: { url: process.env.DATABASE_URL ?? "" }
})
