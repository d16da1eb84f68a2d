// The shape of the sources: no import cycle among packages/*/src (type
// imports included), and no function over 80 lines but the ones listed below,
// each capped at its length today so that the list can only shrink. A new
// long function, or a listed one that grows, fails here.
import fs from "node:fs"
import path from "node:path"
import { fileURLToPath } from "node:url"
import ts from "typescript"
import { describe, expect, it } from "vitest"

const root = fileURLToPath(new URL("..", import.meta.url))
const MAX_LINES = 80

// Files allowed a function longer than MAX_LINES, each with a cap: none today.
const allowed: Record<string, number> = {}

const sources = (): Array<string> => {
  const files: Array<string> = []
  const walk = (dir: string) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name)
      if (entry.isDirectory()) {
        if (!["node_modules", "dist", "generated"].includes(entry.name)) walk(full)
      } else if (/\.m?ts$/.test(entry.name) && !/\.d\.m?ts$/.test(entry.name)) files.push(full)
    }
  }
  for (const pkg of fs.readdirSync(path.join(root, "packages"))) {
    const src = path.join(root, "packages", pkg, "src")
    if (fs.existsSync(src)) walk(src)
  }
  return files
}

const parse = (file: string) => ts.createSourceFile(file, fs.readFileSync(file, "utf8"), ts.ScriptTarget.Latest, true)

const functionName = (node: ts.Node, sf: ts.SourceFile): string => {
  const named = (node as { name?: ts.Node }).name
  if (named !== undefined) return named.getText(sf)
  const parent = node.parent
  if (parent !== undefined && (ts.isVariableDeclaration(parent) || ts.isPropertyAssignment(parent))) return parent.name.getText(sf)
  return "(anonymous)"
}

const longFunctionsIn = (sf: ts.SourceFile, relative: string) => {
  const found: Array<{ key: string; file: string; lines: number; at: number }> = []
  const visit = (node: ts.Node) => {
    if (ts.isFunctionLike(node) && (node as { body?: ts.Node }).body !== undefined) {
      const start = sf.getLineAndCharacterOfPosition(node.getStart(sf)).line + 1
      const lines = sf.getLineAndCharacterOfPosition(node.end).line + 2 - start
      if (lines > MAX_LINES) found.push({ key: `${relative} ${functionName(node, sf)}`, file: relative, lines, at: start })
    }
    ts.forEachChild(node, visit)
  }
  visit(sf)
  return found
}

const longFunctions = () => sources().flatMap((file) => longFunctionsIn(parse(file), path.relative(root, file)))

const importGraph = () => {
  const graph = new Map<string, Set<string>>()
  for (const file of sources()) {
    const deps = new Set<string>()
    for (const statement of parse(file).statements) {
      const specifier = (ts.isImportDeclaration(statement) || ts.isExportDeclaration(statement)) &&
          statement.moduleSpecifier !== undefined && ts.isStringLiteral(statement.moduleSpecifier)
        ? statement.moduleSpecifier.text
        : undefined
      if (specifier === undefined || !specifier.startsWith(".")) continue
      const base = path.resolve(path.dirname(file), specifier).replace(/\.m?js$/, "")
      const target = [".ts", ".mts", "/index.ts"].map((ending) => base + ending).find((p) => fs.existsSync(p))
      if (target !== undefined) deps.add(target)
    }
    graph.set(file, deps)
  }
  return graph
}

/** Every cycle's files, by depth-first search with a path stack. */
const cycles = (graph: Map<string, Set<string>>): Array<Array<string>> => {
  const found: Array<Array<string>> = []
  const state = new Map<string, "open" | "done">()
  const trail: Array<string> = []
  const visit = (file: string) => {
    state.set(file, "open")
    trail.push(file)
    for (const next of graph.get(file) ?? []) {
      if (state.get(next) === "open") found.push(trail.slice(trail.indexOf(next)).map((f) => path.relative(root, f)))
      else if (state.get(next) === undefined) visit(next)
    }
    trail.pop()
    state.set(file, "done")
  }
  for (const file of graph.keys()) if (state.get(file) === undefined) visit(file)
  return found
}

describe("source structure", () => {
  it("has no import cycle among packages/*/src", () => {
    expect(cycles(importGraph())).toEqual([])
  })

  it(`has no function over ${MAX_LINES} lines but the listed ones, none longer than its cap`, () => {
    const over = longFunctions().filter(({ file, lines }) => lines > (allowed[file] ?? MAX_LINES))
    expect(over.map(({ at, key, lines }) => `${key}:${at} ${lines} lines`)).toEqual([])
  })

  it("finds what it looks for: a cycle and a long function in a sample", () => {
    const sample = new Map([["a", new Set(["b"])], ["b", new Set(["a"])], ["c", new Set<string>()]])
    expect(cycles(sample)).toHaveLength(1)
    const body = Array.from({ length: MAX_LINES }, (_, i) => `  const x${i} = ${i}`).join("\n")
    const sample2 = ts.createSourceFile("sample.ts", `export const long = () => {\n${body}\n}\nconst short = () => 1\n`, ts.ScriptTarget.Latest, true)
    expect(longFunctionsIn(sample2, "sample.ts").map(({ key, lines }) => [key, lines])).toEqual([["sample.ts long", MAX_LINES + 2]])
  })
})
