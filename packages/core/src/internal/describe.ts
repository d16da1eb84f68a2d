/**
 * How a `DatabaseError` reads in logs and health reports: its tag and code
 * (`ConnectionError (57P01)`), and with `describe` its message too.
 */
import type { DatabaseError } from "../Errors.js"

/** `ConnectionError (57P01)`, or the tag alone when there is no code. */
export const tagAndCode = (error: DatabaseError): string =>
  error.code === undefined ? error._tag : `${error._tag} (${error.code})`

/** `ConnectionError (57P01): terminating connection due to administrator command` */
export const describe = (error: DatabaseError): string => `${tagAndCode(error)}: ${error.message}`
