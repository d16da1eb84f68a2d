/**
 * The Promise adapter's rejections: Prisma's own answer (a unique violation, a
 * missing row, bad input) reaches the caller as the Prisma error object, so
 * `instanceof Prisma.PrismaClientKnownRequestError`, `code` and `meta` work as
 * with a plain client; the layer's classification of it stays readable through
 * `classificationOf`. Failures the layer creates are its typed errors.
 */
import { type DatabaseError, isDatabaseError } from "../Errors.js"

// Keyed weakly: the classification lives as long as the error the caller holds.
const classifications = new WeakMap<object, DatabaseError>()

// Prisma's error classes all carry this prefix (PrismaClientKnownRequestError,
// PrismaClientValidationError, …); matching by name keeps core free of a
// dependency on the app's generated client.
const isPrismaError = (u: unknown): u is Error =>
  u instanceof Error && typeof u.name === "string" && u.name.startsWith("PrismaClient")

/**
 * The error a Promise caller sees for `error` from the layer: a `QueryError`
 * (an answer the same request would get again) is replaced by the Prisma error
 * it classified; everything else is returned as it is.
 */
export const toCallerError = (error: unknown): unknown => {
  if (isDatabaseError(error) && error._tag === "QueryError" && isPrismaError(error.cause)) {
    classifications.set(error.cause, error)
    return error.cause
  }
  return error
}

/** The layer's classification of a rejection: the `DatabaseError` itself, or the one kept for a Prisma error. */
export const classificationOf = (error: unknown): DatabaseError | undefined =>
  isDatabaseError(error) ? error : (typeof error === "object" && error !== null ? classifications.get(error) : undefined)
