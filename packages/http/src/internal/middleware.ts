/**
 * The router-wide middleware, shared by the Node server and the web handler.
 * It wraps every route (and the router's own "no route"), outside the
 * HttpApi: it has the body read strictly (`Input.strictText`, bounded by
 * `MAX_BODY_BYTES`), answers what the platform would otherwise send with an
 * empty body (unknown route, unreadable body, defects) with JSON, a body over
 * the limit with 413, and adds `Retry-After` to every 503 (`/health` and an
 * open circuit set their own).
 *
 * In Effect 4 the HttpApi has already encoded its errors into responses by
 * the time they get here, so the header is added to the response itself.
 */
import { Cause, Context, Effect, type Types } from "effect"
import { HttpEffect, HttpMethod, HttpRouter, HttpServerError, HttpServerRequest, HttpServerResponse } from "effect/http"
import * as ServerConfig from "../ServerConfig.js"
import * as Input from "./input.js"

export interface Options {
  readonly maxBodyBytes: number
  /** sent as `Retry-After` with every 503 */
  readonly retryAfterSeconds: number
}

const badRequest = (message: string) =>
  HttpServerResponse.jsonUnsafe(
    // The shape of the HttpApi's own decode errors, so that clients handle one kind of 400.
    { _tag: "HttpApiDecodeError", issues: [{ _tag: "Type", path: [], message }], message },
    { status: 400 }
  )

/**
 * 413 for a body over `MAX_BODY_BYTES` (RFC 9110 "Content Too Large"), and
 * the end of the connection: keeping it would mean reading all of the
 * oversized body first. On the Node server it closes lingeringly (see
 * `Drain.track`), so the client reads the answer instead of a reset.
 */
const tooLargeResponse = (message: string) =>
  HttpServerResponse.jsonUnsafe({ _tag: "PayloadTooLarge", message }, { status: 413, headers: { connection: "close" } })

const reasonOf = (u: unknown) => (HttpServerError.isHttpServerError(u) ? u.reason : undefined)

/** A body that could not be read: the platform's reading failure or `Input.strictText`'s. */
const unreadable = (error: HttpServerError.RequestParseError, tooLarge: string) =>
  error.cause instanceof Input.BodyTooLarge || error.reason === "BodyTooLarge"
    ? tooLargeResponse(tooLarge)
    : badRequest(error.cause instanceof Input.InvalidBody ? error.cause.message : "request body is not valid JSON")

/**
 * `request` reading its body as `text`. The platform's request classes read
 * `json` through their own `text` and offer no way to substitute it, so the
 * original request is the prototype of one that does. (`RequireJson` lets
 * only JSON through, which the HttpApi reads with `text`.)
 */
const withText = (
  request: HttpServerRequest.HttpServerRequest,
  text: Effect.Effect<string, HttpServerError.HttpServerError>
): HttpServerRequest.HttpServerRequest => Object.create(request, { text: { value: text } })

const notFound = (request: HttpServerRequest.HttpServerRequest) =>
  HttpServerResponse.jsonUnsafe(
    { _tag: "RouteNotFound", message: `no route for ${request.method} ${request.url.split("?")[0]}` },
    { status: 404 }
  )

/** The response for a failed request, or undefined to let the platform answer it. */
const recover = (
  request: HttpServerRequest.HttpServerRequest,
  cause: Cause.Cause<unknown>,
  tooLarge: string
): Effect.Effect<HttpServerResponse.HttpServerResponse> | undefined => {
  for (const reason of cause.reasons) {
    // The HttpApi reads the body with `orDie`, so an unreadable body arrives as a defect.
    const value = reason._tag === "Fail" ? reason.error : reason._tag === "Die" ? reason.defect : undefined
    const serverReason = reasonOf(value)
    if (serverReason?._tag === "RouteNotFound") return Effect.succeed(notFound(request))
    if (serverReason?._tag === "RequestParseError") return Effect.succeed(unreadable(serverReason, tooLarge))
  }
  if (Cause.hasFails(cause) || !Cause.hasDies(cause)) return undefined
  return Effect.as(
    Effect.logError("Unhandled defect", cause),
    HttpServerResponse.jsonUnsafe({ _tag: "InternalServerError", message: "internal server error" }, { status: 500 })
  )
}

/** The middleware's function, for `HttpRouter.middleware`. */
export const make = (options: Options) => {
  const tooLarge = `request body exceeds ${options.maxBodyBytes} bytes`
  const retryAfter = String(options.retryAfterSeconds)
  const withRetryAfter = (response: HttpServerResponse.HttpServerResponse) =>
    response.status === 503 && response.headers["retry-after"] === undefined
      ? HttpServerResponse.setHeader(response, "retry-after", retryAfter)
      : response

  return (
    app: Effect.Effect<HttpServerResponse.HttpServerResponse, Types.unhandled>
  ): Effect.Effect<HttpServerResponse.HttpServerResponse, Types.unhandled, HttpServerRequest.HttpServerRequest> => {
    const readingStrictly = (request: HttpServerRequest.HttpServerRequest) =>
      Number(request.headers["content-length"] ?? 0) > options.maxBodyBytes
        ? Effect.succeed(tooLargeResponse(tooLarge))
        : Effect.flatMap(Effect.cached(Input.strictText(request, options.maxBodyBytes)), (text) =>
          Effect.provideService(app, HttpServerRequest.HttpServerRequest, withText(request, text)))

    // The HttpApi reads a body only for a method that has one; a GET's way
    // through here is two operations.
    return Effect.withFiber((fiber) => {
      const request = Context.getUnsafe(fiber.context, HttpServerRequest.HttpServerRequest)
      const served = HttpMethod.hasBody(request.method) ? readingStrictly(request) : app
      return Effect.matchCauseEffect(served, {
        onSuccess: (response) => Effect.succeed(withRetryAfter(response)),
        onFailure: (cause) => recover(request, cause, tooLarge) ?? Effect.failCause(cause)
      })
    })
  }
}

/** `Retry-After` for a wait of `ms`: whole seconds, rounded up, at least 1. */
export const retryAfterValue = (ms: number) => String(Math.max(1, Math.ceil(ms / 1000)))

/** Sets this response's `Retry-After` to `retryAfterValue(ms)` instead of the configured default. */
export const retryAfter = (ms: number) =>
  HttpEffect.appendPreResponseHandler((_, response) =>
    Effect.succeed(HttpServerResponse.setHeader(response, "retry-after", retryAfterValue(ms)))
  )

/** The middleware as a router-wide layer, configured from `ServerConfig`. */
export const layer = HttpRouter.middleware(Effect.map(ServerConfig.config, make), { global: true })
