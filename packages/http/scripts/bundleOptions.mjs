// The esbuild options of the service's bundle (scripts/bundle.mjs), shared
// with the benchmark servers (bench/support.ts) so that every server of
// bench/http.ts is built, loaded and kept in memory the same way.
import path from "node:path"

/**
 * `@effect/platform-node`'s HTTP server imports its HTTP client module, which
 * imports undici: 0.74 MB of CommonJS that a bundle evaluates at start (a
 * `require` is a side effect, so it survives tree shaking) for a client the
 * service never uses. The module re-exporting undici is replaced by one that
 * requires it on the first call of the two functions that use it
 * (`new Undici.Agent()`, `Undici.getGlobalDispatcher()`): unused, it is
 * tree-shaken away with undici; used, undici is still bundled and loads then.
 * @type {import("esbuild").Plugin}
 */
const lazyUndici = {
  name: "lazy-undici",
  setup(build) {
    // dist/Undici.js in @effect/platform-node 4 (dist/esm/Undici.js in 0.x)
    build.onLoad({ filter: /@effect[\\/]platform-node[\\/]dist[\\/](?:esm[\\/])?Undici\.js$/ }, (args) => ({
      loader: "js",
      resolveDir: path.dirname(args.path),
      contents: [
        "let undici",
        "const load = () => undici ??= require(\"undici\")",
        "export function getGlobalDispatcher() { return load().getGlobalDispatcher() }",
        "export function Agent(...args) { return new (load().Agent)(...args) }",
        "export default new Proxy({}, { get: (_, key) => load()[key] })"
      ].join("\n")
    }))
  }
}

const httpPackageDir = path.dirname(path.dirname(new URL(import.meta.url).pathname))

/**
 * One Effect 4 in the bundle. The root keeps Effect 3 hoisted, so npm nests
 * effect 4.1.5 twice: under packages/http and under packages/core. Bundled
 * as they are, core's imports would bring a second copy of Effect (some
 * 200 KB more on the start path, and two runtimes). Core's `effect` imports
 * resolve from the http package instead: the same version, one copy.
 * @type {import("esbuild").Plugin}
 */
const oneEffect = {
  name: "one-effect",
  setup(build) {
    build.onResolve({ filter: /^effect(?:\/.*)?$/ }, (args) => {
      if (args.pluginData === "one-effect" || !/[\\/]packages[\\/]core[\\/]/.test(args.importer)) return undefined
      return build.resolve(args.path, { kind: args.kind, resolveDir: httpPackageDir, pluginData: "one-effect" })
    })
  }
}

/** @type {import("esbuild").BuildOptions} */
export const bundleOptions = {
  bundle: true,
  platform: "node",
  // @effect/platform-node 4 needs Node >= 22.19 (the service runs on Node 24)
  target: "node22",
  format: "esm",
  outExtension: { ".js": ".mjs" },
  // Shared code in chunks; modules imported with import() (Prisma's query
  // compiler, the Scalar docs page) are loaded when first used.
  splitting: true,
  // V8 keeps every module's source text for as long as the process runs:
  // without comments and indentation the start path's sources were 2.8 MB
  // instead of 4.0 MB (2.1 MB once undici was deferred, above), and they are
  // Latin-1 (one byte per character, where a single "’" in a comment makes V8
  // store a whole file at two). Names stay, so stack traces keep their
  // function names; sourcemaps map the positions.
  minifyWhitespace: true,
  external: ["@prisma-resilience/devdb"],
  plugins: [lazyUndici, oneEffect],
  // CommonJS dependencies call require(); an ES module has none of its own.
  banner: { js: "import { createRequire as __bundleRequire } from 'node:module'; const require = __bundleRequire(import.meta.url);" },
  logLevel: "warning"
}
