// Types of child-process.mjs (plain JavaScript, shared with bench/).
import type { ChildProcess } from "node:child_process";

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export declare class Proc {
  readonly label: string;
  readonly child: ChildProcess;
  readonly pid: number;
  /** resolves when the output pipes have closed too ('exit' can come before the last data) */
  readonly closed: Promise<void>;
  constructor(
    label: string,
    cmd: string,
    args: readonly string[],
    opts?: { env?: NodeJS.ProcessEnv; stdin?: "pipe" | "ignore" },
  );
  get stdout(): string;
  get stderr(): string;
  /** undefined while running */
  get exit(): ExitStatus | undefined;
  tapStdout(fn: (chunk: string) => void): void;
  write(s: string): void;
  until<T>(what: string, timeoutMs: number, check: () => T | undefined): Promise<T>;
  tail(chars?: number): string;
  waitExit(timeoutMs: number): Promise<ExitStatus | undefined>;
  kill(graceMs?: number): Promise<ExitStatus | undefined>;
}

export declare function describeExit(s: ExitStatus): string;
export declare function run(
  cmd: string,
  args: readonly string[],
  timeoutMs?: number,
): Promise<{ code: number | null; stdout: string; stderr: string }>;
export declare function runOk(cmd: string, args: readonly string[], timeoutMs?: number): Promise<string>;
