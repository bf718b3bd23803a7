/**
 * Child processes for the e2e harness: the one implementation the benchmarks use too
 * (child-process.mjs, plain JavaScript so that bench/ runs it without a build).
 */
export { describeExit, type ExitStatus, Proc, run, runOk } from "./child-process.mjs";
