/**
 * `DecodeErrors`: the HttpApi's request decoding failures as JSON. Effect 4's
 * HttpApi answers a `HttpApiSchemaError` (path, query, headers or payload
 * that does not decode) with an empty 400; the service's clients get, as with
 * Effect 3, an `HttpApiDecodeError` whose `issues[].path` names the field and
 * whose messages are the schemas' fixed text (never the input).
 */
import { Effect, SchemaIssue } from "effect"
import { HttpApiMiddleware } from "effect/http-api"
import { DecodeErrors, HttpApiDecodeError } from "../Api.js"

const format = SchemaIssue.makeFormatterStandardSchemaV1()

// The HttpApi's own message for a body that `JSON.parse` refused.
const invalidJson = "Expected a valid JSON body"

/** The kind of the first leaf issue, as the `_tag` of an entry of `issues`. */
const leafTag = (issue: SchemaIssue.Issue): string => {
  let current: SchemaIssue.Issue = issue
  for (let depth = 0; depth < 100; depth++) {
    switch (current._tag) {
      case "Pointer":
      case "Filter":
      case "Encoding":
        current = current.issue
        continue
      case "Composite":
        current = current.issues[0]
        continue
      case "AnyOf":
        if (current.issues[0] === undefined) return current._tag
        current = current.issues[0]
        continue
      default:
        return current._tag
    }
  }
  return current._tag
}

/** The body of the 400 for one schema error. */
export const toDecodeError = (issue: SchemaIssue.Issue): HttpApiDecodeError => {
  const tag = leafTag(issue)
  const issues = format(issue).issues.map((entry) => ({
    _tag: tag,
    path: (entry.path ?? []).map((key) =>
      typeof key === "object" ? String(key.key) : typeof key === "symbol" ? String(key) : key
    ),
    message: entry.message === invalidJson ? "request body is not valid JSON" : entry.message
  }))
  const message = issues.length === 1 && issues[0]!.path.length === 0
    ? issues[0]!.message
    : issues.map((entry) => entry.path.length === 0 ? entry.message : `${entry.path.join(".")}: ${entry.message}`)
      .join("; ")
  return new HttpApiDecodeError({ issues, message })
}

/** The `DecodeErrors` middleware of `Api`. */
export const layer = HttpApiMiddleware.layerSchemaErrorTransform(
  DecodeErrors,
  (error) => Effect.fail(toDecodeError(error.cause.issue))
)
