/**
 * How `npm start` and `npm run db:migrate` turn their end into an exit code.
 * `NodeRuntime.runMain` answers SIGTERM and SIGINT by interrupting the main
 * fiber; Effect 4's default teardown then exits with 130 (the shell's code
 * for "interrupted"), where Effect 3's exited 0. An ordered shutdown on a
 * signal is the service's normal end, and platforms (Kubernetes, systemd)
 * read a non-zero code after SIGTERM as a crash: it exits 0, as before.
 */
import { Cause, Exit, Runtime } from "effect"

export const teardown: Runtime.Teardown = (exit, onExit) =>
  Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause) ? onExit(0) : Runtime.defaultTeardown(exit, onExit)
