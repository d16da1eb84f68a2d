// Inside the repository the workspace packages resolve to their TypeScript
// sources, so tests see an edit without a build. What users install, the
// compiled `dist/` of the packed tarball, is tested by test/artifact.test.ts.
import { fileURLToPath } from "node:url"

const source = (file: string) => fileURLToPath(new URL(file, import.meta.url))

export const alias = [
  { find: /^@prisma-resilience\/core$/, replacement: source("./packages/core/src/index.ts") },
  { find: /^@prisma-resilience\/core-effect3$/, replacement: source("./packages/core-effect3/src/index.ts") },
  { find: /^@prisma-resilience\/kernel$/, replacement: source("./packages/kernel/src/index.ts") },
  { find: /^@prisma-resilience\/kernel\/(\w+)$/, replacement: source("./packages/kernel/src/$1.ts") },
  { find: /^@prisma-resilience\/devdb$/, replacement: source("./packages/devdb/src/index.ts") },
  { find: /^@prisma-resilience\/http$/, replacement: source("./packages/http/src/index.ts") },
  { find: /^@prisma-resilience\/http\/db$/, replacement: source("./packages/http/src/db/index.ts") }
]
