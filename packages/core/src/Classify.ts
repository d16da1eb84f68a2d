/**
 * `classify`: one pure function from anything a Prisma call can throw to a
 * tagged `DatabaseError` that says whether and when a retry is safe. The
 * taxonomy itself (Prisma 7 driver-adapter kinds, PostgreSQL SQLSTATEs, Prisma
 * 5/6 engine messages, plain Node driver errors) is data in `kernel/classify`.
 */
import {
  CircuitOpenError,
  ConnectionError,
  type DatabaseError,
  EmptyResponseError,
  isDatabaseError,
  QueryError,
  TimeoutError,
  TransactionError
} from "./Errors.js"
import { diagnose } from "@prisma-resilience/kernel/classify"

/**
 * Where the error happened, copied onto the classified error: the
 * operation's name and the 1-based attempt.
 *
 * @since 0.1.0
 */
export interface ClassifyContext {
  readonly operation?: string | undefined
  readonly attempt?: number | undefined
}

const constructors = {
  ConnectionError,
  EmptyResponseError,
  TimeoutError,
  TransactionError,
  QueryError
} as const

/**
 * Turns anything a database call threw into a `DatabaseError`. Pure and total:
 * unknown errors become a non-retryable `QueryError`. A `DatabaseError` passed
 * in keeps its classification and takes the context's operation and attempt.
 *
 * @since 0.1.0
 */
export const classify = (error: unknown, context: ClassifyContext = {}): DatabaseError => {
  if (isDatabaseError(error)) {
    if (error._tag === "CircuitOpenError") {
      return new CircuitOpenError({
        ...error,
        operation: context.operation ?? error.operation,
        attempt: context.attempt ?? error.attempt
      })
    }
    return new constructors[error._tag]({
      operation: context.operation ?? error.operation,
      attempt: context.attempt ?? error.attempt,
      safety: error.safety,
      code: error.code,
      message: error.message,
      cause: error.cause
    })
  }
  const d = diagnose(error)
  return new constructors[d.tag]({
    operation: context.operation ?? "unknown",
    attempt: context.attempt ?? 1,
    safety: d.safety,
    code: d.code,
    message: d.message,
    cause: error
  })
}
