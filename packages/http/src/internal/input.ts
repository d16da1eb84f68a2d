/**
 * What the service accepts as a request body, checked before the HttpApi
 * decodes it: the media type (`RequireJson`, per endpoint), then the bytes
 * (UTF-8 and nesting depth, when a route reads the body).
 *
 * @since 0.1.0
 */
import { Data, Effect, Layer, type Types } from "effect"
import { HttpServerError, HttpServerRequest, type HttpServerResponse } from "effect/http"
import { Readable } from "node:stream"
import { RequireJson, UnsupportedMediaType } from "../Api.js"

/**
 * Deeper arrays and objects are refused before `JSON.parse`. No payload of
 * this API nests more than once; the limit leaves room for the schema to name
 * the offending field, and keeps everything downstream (decoding, error
 * formatting, logging) far from the recursion limit.
 */
export const maxNesting = 64

/**
 * A body that cannot be read, as the platform's own reading failures are
 * (Effect 4: an `HttpServerError` whose reason is a `RequestParseError`);
 * `cause` says why.
 */
type RequestError = HttpServerError.HttpServerError

const requestError = (request: HttpServerRequest.HttpServerRequest, cause: unknown): RequestError =>
  new HttpServerError.HttpServerError({ reason: new HttpServerError.RequestParseError({ request, cause }) })

/** The body cannot be read as the JSON this API takes; `message` is fit for the client. */
export class InvalidBody extends Data.TaggedError("InvalidBody")<{ readonly message: string }> {}

/** The body is larger than `MAX_BODY_BYTES` (answered 413); `message` is fit for the client. */
export class BodyTooLarge extends Data.TaggedError("BodyTooLarge")<{ readonly message: string }> {}

/** Why `contentType` is not UTF-8 JSON, or undefined when it is. */
export const contentTypeProblem = (contentType: string | undefined): string | undefined => {
  if (contentType === undefined || contentType.trim() === "") return "Content-Type is missing: send application/json"
  const [mediaType = "", ...parameters] = contentType.split(";")
  if (mediaType.trim().toLowerCase() !== "application/json") return "Content-Type must be application/json"
  for (const parameter of parameters) {
    const separator = parameter.indexOf("=")
    if (separator === -1 || parameter.slice(0, separator).trim().toLowerCase() !== "charset") continue
    const charset = parameter.slice(separator + 1).trim().replace(/^"(.*)"$/, "$1").toLowerCase()
    // JSON is UTF-8 (RFC 8259); other charsets are refused, not guessed at.
    if (charset !== "utf-8" && charset !== "utf8") return "the request body must be UTF-8 (charset=utf-8 or none)"
  }
  return undefined
}

/**
 * Whether `text` nests arrays and objects more than `limit` deep. Counts
 * brackets outside strings, without recursion; malformed JSON is left to
 * `JSON.parse`.
 */
export const nestsDeeperThan = (text: string, limit: number): boolean => {
  let depth = 0
  let inString = false
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (inString) {
      if (c === 0x5c) i++ // backslash: skip the escaped character
      else if (c === 0x22) inString = false
    } else if (c === 0x22) {
      inString = true
    } else if (c === 0x5b || c === 0x7b) {
      if (++depth > limit) return true
    } else if (c === 0x5d || c === 0x7d) {
      depth--
    }
  }
  return false
}

const utf8 = new TextDecoder("utf-8", { fatal: true })

/**
 * The body as text, strictly: the platform decodes UTF-8 leniently (invalid
 * bytes become U+FFFD, silently altering what is stored), so the bytes are
 * decoded here, once, and refused if they are not UTF-8 or nest too deep.
 * Failures are `HttpServerError`s (`RequestParseError`) carrying an `InvalidBody` (or `BodyTooLarge`),
 * like any other unreadable body.
 */
export const strictText = (
  request: HttpServerRequest.HttpServerRequest,
  maxBodyBytes: number
): Effect.Effect<string, RequestError> =>
  Effect.flatMap(bytesOf(request, maxBodyBytes), (buffer) => {
    const invalid = (message: string) =>
      Effect.fail(requestError(request, new InvalidBody({ message })))
    // A web `Request` has been read whole; a Node request stopped at the limit.
    if (buffer.byteLength > maxBodyBytes) return Effect.fail(tooLarge(request, maxBodyBytes))
    let text: string
    try {
      text = utf8.decode(buffer)
    } catch {
      return invalid("request body is not valid UTF-8")
    }
    return nestsDeeperThan(text, maxNesting)
      ? invalid(`request body nests arrays or objects more than ${maxNesting} levels deep`)
      : Effect.succeed(text)
  })

const tooLarge = (request: HttpServerRequest.HttpServerRequest, maxBodyBytes: number) =>
  requestError(request, new BodyTooLarge({ message: `request body exceeds ${maxBodyBytes} bytes` }))

/**
 * The body's bytes. On Node they are read here, not by the platform: its
 * reader destroys the request when the body passes the limit, and with it
 * the socket, so a chunked body (no Content-Length to refuse up front) over
 * the limit got no answer at all. Here the rest is discarded as it comes
 * while the 413 goes out, and the connection is closed lingeringly (see
 * `Drain.track`).
 */
const bytesOf = (request: HttpServerRequest.HttpServerRequest, maxBodyBytes: number) => {
  const source = (request as { readonly source?: unknown }).source
  if (!(source instanceof Readable)) {
    return Effect.map(request.arrayBuffer, (buffer) => new Uint8Array(buffer))
  }
  return Effect.callback<Uint8Array, RequestError>((resume) => {
    const chunks: Array<Buffer> = []
    let bytes = 0
    const onData = (chunk: Buffer) => {
      bytes += chunk.length
      if (bytes <= maxBodyBytes) return void chunks.push(chunk)
      // Keep reading, discarding, so the answer is not stuck behind the body.
      source.off("data", onData).off("end", onEnd).off("error", onError).resume()
      resume(Effect.fail(tooLarge(request, maxBodyBytes)))
    }
    const onEnd = () => resume(Effect.succeed(Buffer.concat(chunks)))
    const onError = (cause: unknown) => resume(Effect.fail(requestError(request, cause)))
    source.on("data", onData).once("end", onEnd).once("error", onError)
    return Effect.sync(() => void source.off("data", onData).off("end", onEnd).off("error", onError))
  })
}

/** `RequireJson`: 415 before the payload is read, unless the request declares UTF-8 JSON. */
export const RequireJsonLive = Layer.succeed(
  RequireJson,
  (httpEffect) =>
    Effect.flatMap(HttpServerRequest.HttpServerRequest, (
      request
    ): Effect.Effect<HttpServerResponse.HttpServerResponse, Types.unhandled | UnsupportedMediaType> => {
      const problem = contentTypeProblem(request.headers["content-type"])
      return problem === undefined ? httpEffect : Effect.fail(new UnsupportedMediaType({ message: problem }))
    })
)
