/**
 * The API-level middleware, shared by the Node server and the web handler. It
 * wraps the router, inside the HttpApi's error encoding: it sets the body size
 * limit, has the body read strictly (`Input.strictText`), answers the failures
 * that the HttpApi would otherwise send with an empty body (unknown route,
 * unreadable body, defects) with JSON, a body over the limit with 413, and adds `Retry-After` to every 503
 * that a failure becomes (`/health` sets its own).
 */
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpApp from "@effect/platform/HttpApp"
import * as HttpIncomingMessage from "@effect/platform/HttpIncomingMessage"
import * as HttpMethod from "@effect/platform/HttpMethod"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import type { RequestError } from "@effect/platform/HttpServerError"
import { Cause, Chunk, Context, Effect, Option, Predicate } from "effect"
import * as ServerConfig from "../ServerConfig.js"
import * as Input from "./input.js"

export interface Options {
  readonly maxBodyBytes: number
  /** sent as `Retry-After` with every 503 */
  readonly retryAfterSeconds: number
}

const badRequest = (message: string) =>
  HttpServerResponse.unsafeJson(
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
  HttpServerResponse.unsafeJson({ _tag: "PayloadTooLarge", message }, { status: 413, headers: { connection: "close" } })

const hasTag = (tag: string) => (u: unknown): boolean => Predicate.hasProperty(u, "_tag") && u._tag === tag

const isRequestError = (u: unknown): u is RequestError => hasTag("RequestError")(u)

const unreadable = (error: RequestError, tooLarge: string) =>
  error.cause instanceof Input.BodyTooLarge ||
    (error.cause instanceof Error && error.cause.message === "maxBytes exceeded")
    ? tooLargeResponse(tooLarge)
    : badRequest(error.cause instanceof Input.InvalidBody ? error.cause.message : "request body is not valid JSON")

/**
 * `request` reading its body as `text`. The platform's request classes read
 * `json` through their own `text` and offer no way to substitute it, so the
 * original request is the prototype of one that does. (`RequireJson` lets
 * only JSON through, which the HttpApi reads with `json`.)
 */
const withText = (
  request: HttpServerRequest.HttpServerRequest,
  text: Effect.Effect<string, RequestError>
): HttpServerRequest.HttpServerRequest => Object.create(request, { text: { value: text } })

export const make = (options: Options) => (app: HttpApp.Default): HttpApp.Default => {
  const tooLarge = `request body exceeds ${options.maxBodyBytes} bytes`
  const retryAfter = String(options.retryAfterSeconds)
  // A failure becomes a response only after this middleware (the HttpApi
  // encodes its errors outside it): the header waits for it in a
  // pre-response handler. `/health` sets its own.
  const addRetryAfter = HttpApp.appendPreResponseHandler((_, response) =>
    Effect.succeed(
      response.status === 503 && response.headers["retry-after"] === undefined
        ? HttpServerResponse.setHeader(response, "retry-after", retryAfter)
        : response
    )
  )
  const limited = HttpIncomingMessage.withMaxBodySize(app, Option.some(options.maxBodyBytes))

  const readingStrictly = (request: HttpServerRequest.HttpServerRequest) =>
    Number(request.headers["content-length"] ?? 0) > options.maxBodyBytes
      ? Effect.succeed(tooLargeResponse(tooLarge))
      : Effect.flatMap(Effect.cached(Input.strictText(request, options.maxBodyBytes)), (text) =>
        Effect.provideService(limited, HttpServerRequest.HttpServerRequest, withText(request, text)))

  const recover = (cause: Cause.Cause<never>) =>
    Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
      if (Chunk.some(Cause.failures(cause), hasTag("RouteNotFound"))) {
        return Effect.succeed(
          HttpServerResponse.unsafeJson(
            { _tag: "RouteNotFound", message: `no route for ${request.method} ${request.url.split("?")[0]}` },
            { status: 404 }
          )
        )
      }
      // The HttpApi reads the body with `orDie`, so an unreadable body arrives as a defect.
      const unreadableBody = Chunk.findFirst(Cause.defects(cause), isRequestError)
      if (Option.isSome(unreadableBody)) return Effect.succeed(unreadable(unreadableBody.value, tooLarge))
      // Typed failures are the API's errors, encoded after this middleware.
      if (!Cause.isDie(cause) || !Chunk.isEmpty(Cause.failures(cause))) {
        return Effect.zipRight(addRetryAfter, Effect.failCause(cause))
      }
      return Effect.as(
        Effect.logError("Unhandled defect", cause),
        HttpServerResponse.unsafeJson({ _tag: "InternalServerError", message: "internal server error" }, {
          status: 500
        })
      )
    })

  // The HttpApi reads a body only for a method that has one; a GET's way
  // through here is two operations.
  return Effect.catchAllCause(
    Effect.withFiberRuntime<HttpServerResponse.HttpServerResponse, never, HttpServerRequest.HttpServerRequest>(
      (fiber) => {
        const request = Context.unsafeGet(fiber.currentContext, HttpServerRequest.HttpServerRequest)
        return HttpMethod.hasBody(request.method) ? readingStrictly(request) : app
      }
    ),
    recover
  )
}

/** `Retry-After` for a wait of `ms`: whole seconds, rounded up, at least 1. */
export const retryAfterValue = (ms: number) => String(Math.max(1, Math.ceil(ms / 1000)))

/** Sets this response's `Retry-After` to `retryAfterValue(ms)` instead of the configured default. */
export const retryAfter = (ms: number) =>
  HttpApp.appendPreResponseHandler((_, response) =>
    Effect.succeed(HttpServerResponse.setHeader(response, "retry-after", retryAfterValue(ms)))
  )

/** The middleware as a layer, configured from `ServerConfig`. */
export const layer = HttpApiBuilder.middleware(Effect.map(ServerConfig.config, make))
