/**
 * How a classified database error reads in logs and health reports: its tag
 * and code (`ConnectionError (57P01)`), and with `describe` its message too.
 * One describer for every binding, so a log line means the same everywhere.
 *
 * @since 0.2.0
 */

/**
 * What `describe` reads of an error: a classified error of any binding.
 *
 * @since 0.2.0
 */
export interface Describable {
  readonly _tag: string
  readonly code?: string | undefined
  readonly message: string
}

/**
 * `ConnectionError (57P01)`, or the tag alone when there is no code.
 *
 * @since 0.2.0
 */
export const tagAndCode = (error: Pick<Describable, "_tag" | "code">): string =>
  error.code === undefined ? error._tag : `${error._tag} (${error.code})`

/**
 * `ConnectionError (57P01): terminating connection due to administrator command`
 *
 * @since 0.2.0
 */
export const describe = (error: Describable): string => `${tagAndCode(error)}: ${error.message}`
