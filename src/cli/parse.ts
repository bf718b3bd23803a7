/**
 * argv (and --config files) → one validated Config, or a help/version request.
 *
 * Two passes. The first reads tokens: `-name`, `--name`, `--name=value` and
 * `-name value` are the same option (QEMU accepts one or two dashes), `--config FILE`
 * is replaced in place by the file's tokens (not recursively), and -h/--help or
 * -V/--version anywhere wins over everything else, even over bad options. The second
 * interprets the options in order and throws UsageError at the first problem: -netdev
 * and -net netdevs are built as they come, -redir forwards are applied at the end to
 * the first user netdev of hub 0 (as old QEMU applied them to its one slirp), and no
 * -netdev/-net at all means the defaults (see defaults.ts). --state-dir and
 * --log-level (and --api-socket) keep their last value, so the command line can override a config file
 * read before it. Finally, netdevs that would bind the same host socket are refused.
 *
 * Pure apart from the injected readFile; the environment and the uid (for the default
 * socket paths) are parameters.
 */
import { readFileSync } from "node:fs";
import type { ApiConfig, Config, HostForward } from "../config.js";
import { guestAddressProblem } from "../forward-rule.js";
import { type LogFormat, logFormats } from "../log.js";
import { checkBindConflicts } from "./binds.js";
import { tokenizeConfigFile } from "./config-file.js";
import { defaultApiSocketPath, defaultNetdevs, defaultRuntimeDir } from "./defaults.js";
import { parseRedirect, redirForm } from "./forwards.js";
import { parseHostPort } from "./inet.js";
import { NetdevList } from "./netdev.js";
import { defaultUserIpv6, defaultUserNetdev } from "./netdev-user.js";
import { usageText } from "./usage.js";
import { UsageError } from "./usage-error.js";
import { readVersion } from "./version.js";

export type CommandLine =
  /** runtimeDir: the private directory the default sockets are in, to check before start */
  | { action: "run"; config: Config; runtimeDir?: string }
  | { action: "help"; text: string }
  | { action: "version"; text: string };

/** options that take a value, with the spelling and form used in messages */
const valued: Record<string, { display: string; form: string }> = {
  netdev: { display: "-netdev", form: "TYPE,id=ID,... such as -netdev user,id=n0" },
  net: { display: "-net", form: "TYPE,... such as -net user,vlan=0" },
  redir: { display: "-redir", form: redirForm },
  config: { display: "--config", form: "FILE such as --config /etc/usernet.conf" },
  "state-dir": { display: "--state-dir", form: "DIR such as --state-dir /var/lib/usernet" },
  "api-socket": {
    display: "--api-socket",
    form: "PATH (slirp4netns's JSON API) such as --api-socket /run/user/1000/usernet.api",
  },
  api: { display: "--api", form: "PATH or off such as --api /run/user/1000/usernet/api.sock" },
  "api-listen": { display: "--api-listen", form: "HOST:PORT such as --api-listen 127.0.0.1:8180" },
  "api-token-file": { display: "--api-token-file", form: "FILE such as --api-token-file ~/.usernet-token" },
  dashboard: { display: "--dashboard", form: "HOST:PORT such as --dashboard 127.0.0.1:8188" },
  "log-level": { display: "--log-level", form: "debug, info, warn or error such as --log-level debug" },
  "log-format": { display: "--log-format", form: "text or json such as --log-format json" },
  device: { display: "-device", form: "" },
  nic: { display: "-nic", form: "" },
};
const flags: Record<string, "help" | "version"> = {
  h: "help",
  help: "help",
  V: "version",
  version: "version",
};
/** options that take no value */
const switches = new Set(["sandbox"]);
const logLevels = ["debug", "info", "warn", "error"] as const;
type LogLevel = (typeof logLevels)[number];
const isLogLevel = (s: string): s is LogLevel => (logLevels as readonly string[]).includes(s);

type Token =
  | { kind: "option"; name: string; value: string; raw: string }
  | { kind: "flag"; name: "help" | "version"; raw: string }
  | { kind: "switch"; name: string; raw: string }
  | { kind: "bad"; message: string };

function readTokens(
  args: readonly string[],
  readFile: (p: string) => string,
  inFile: string | undefined,
): Token[] {
  const out: Token[] = [];
  for (let i = 0; i < args.length; i++) {
    const raw = args[i] as string;
    const dashes = raw.startsWith("--") ? 2 : raw.startsWith("-") ? 1 : 0;
    let name = raw.slice(dashes);
    if (dashes === 0 || name === "") {
      out.push({
        kind: "bad",
        message: `unexpected argument "${raw}": options start with - (see usernet --help)`,
      });
      continue;
    }
    let inline: string | undefined;
    const eq = name.indexOf("=");
    if (eq >= 0) {
      inline = name.slice(eq + 1);
      name = name.slice(0, eq);
    }
    const flag = Object.hasOwn(flags, name) ? flags[name] : undefined;
    if (flag !== undefined) {
      out.push(
        inline === undefined
          ? { kind: "flag", name: flag, raw }
          : { kind: "bad", message: `${raw}: ${name} takes no value` },
      );
      continue;
    }
    if (switches.has(name)) {
      out.push(
        inline === undefined
          ? { kind: "switch", name, raw }
          : { kind: "bad", message: `${raw}: --${name} takes no value` },
      );
      continue;
    }
    const spec = Object.hasOwn(valued, name) ? valued[name] : undefined;
    if (spec === undefined) {
      out.push({ kind: "bad", message: `unknown option "${raw}" (see usernet --help)` });
      continue;
    }
    let value = inline;
    if (value === undefined) {
      if (i + 1 >= args.length) {
        out.push({
          kind: "bad",
          message: `${spec.display}: missing value: expected ${spec.display} ${spec.form}`,
        });
        continue;
      }
      value = args[++i] as string;
    }
    if (name !== "config") {
      out.push({ kind: "option", name, value, raw });
      continue;
    }
    if (inFile !== undefined) {
      out.push({
        kind: "bad",
        message: `--config ${inFile}: --config ${value}: config files cannot include others`,
      });
      continue;
    }
    let text: string;
    try {
      text = readFile(value);
    } catch (e) {
      const why = e instanceof Error ? e.message : String(e);
      throw new UsageError(`--config ${value}: cannot read: ${why}`);
    }
    out.push(...readTokens(tokenizeConfigFile(text, `--config ${value}`), readFile, value));
  }
  return out;
}

export function parseCommandLine(
  argv: string[],
  env: NodeJS.ProcessEnv,
  readFile: (path: string) => string = (p) => readFileSync(p, "utf8"),
  uid: number = process.getuid?.() ?? 0,
): CommandLine {
  const tokens = readTokens(argv, readFile, undefined);
  for (const t of tokens) {
    if (t.kind === "flag") {
      return t.name === "help"
        ? { action: "help", text: usageText }
        : { action: "version", text: `usernet ${readVersion()}\n` };
    }
  }

  const list = new NetdevList();
  const redirs: { raw: string; forward: HostForward }[] = [];
  let sawNetdev = false;
  let stateDir: string | undefined;
  let apiSocket: string | undefined;
  let api: string | undefined;
  let apiListen: { host: string; port: number } | undefined;
  let apiTokenFile: string | undefined;
  let dashboard: { host: string; port: number } | undefined;
  let logLevel: LogLevel = "info";
  let logFormat: LogFormat | undefined;
  let sandbox = false;
  for (const t of tokens) {
    if (t.kind === "bad") throw new UsageError(t.message);
    if (t.kind === "switch") {
      if (t.name === "sandbox") sandbox = true;
      continue;
    }
    if (t.kind !== "option") continue;
    const { name, value } = t;
    switch (name) {
      case "netdev":
      case "net":
        sawNetdev = true;
        list.add(name === "net" ? "-net" : "-netdev", value);
        break;
      case "redir": {
        const r = parseRedirect(value);
        if (!r.ok) throw new UsageError(`-redir ${value}: ${r.reason}; expected ${redirForm}`);
        redirs.push({ raw: value, forward: r.value });
        break;
      }
      case "state-dir":
        if (value === "" || value.includes("\0"))
          throw new UsageError(`--state-dir ${value}: expected a directory`);
        stateDir = value;
        break;
      case "api-socket":
        if (value === "" || value.includes("\0") || Buffer.byteLength(value) > 107) {
          throw new UsageError(
            `--api-socket ${value}: expected ${valued["api-socket"]?.form} (at most 107 bytes)`,
          );
        }
        apiSocket = value;
        break;
      case "api":
        if (value === "" || value.includes("\0") || Buffer.byteLength(value) > 107) {
          throw new UsageError(`--api ${value}: expected ${valued.api?.form} (at most 107 bytes)`);
        }
        api = value;
        break;
      case "api-listen":
        apiListen = parseHostPort(value, 0);
        if (apiListen === undefined) {
          throw new UsageError(`--api-listen ${value}: expected ${valued["api-listen"]?.form}`);
        }
        break;
      case "api-token-file":
        if (value === "" || value.includes("\0")) {
          throw new UsageError(`--api-token-file ${value}: expected ${valued["api-token-file"]?.form}`);
        }
        apiTokenFile = value;
        break;
      case "dashboard":
        dashboard = parseHostPort(value, 0);
        if (dashboard === undefined) {
          throw new UsageError(`--dashboard ${value}: expected ${valued.dashboard?.form}`);
        }
        break;
      case "log-level":
        if (!isLogLevel(value)) {
          throw new UsageError(`--log-level ${value}: expected ${valued["log-level"]?.form}`);
        }
        logLevel = value;
        break;
      case "log-format":
        if (!(logFormats as readonly string[]).includes(value)) {
          throw new UsageError(`--log-format ${value}: expected ${valued["log-format"]?.form}`);
        }
        logFormat = value as LogFormat;
        break;
      default:
        throw new UsageError(
          `-${name}: is a QEMU guest option; it belongs on the QEMU command line, not usernet's`,
        );
    }
  }

  if (!sawNetdev) for (const e of defaultNetdevs(env, uid)) list.push(e);

  const owners = new Map<HostForward, string>();
  if (redirs.length > 0) {
    let target = list.entries.find((e) => e.config.type === "user" && e.config.hub === 0)?.config;
    if (target?.type !== "user") {
      const id = list.generatedId("user");
      target = { ...defaultUserNetdev(id, 0), ipv6: defaultUserIpv6() };
      list.push({
        config: target,
        written: "user",
        origin: `-net user,id=${id} (added for -redir)`,
        implicit: true,
      });
    }
    for (const { raw, forward } of redirs) {
      const problem = guestAddressProblem(target, forward.guestAddr);
      if (problem) throw new UsageError(`-redir ${raw}: ${problem}`);
      target.hostfwd.push(forward);
      owners.set(forward, `-redir ${raw}`);
    }
  }
  checkBindConflicts(list.entries, owners);

  const config: Config = { netdevs: list.entries.map((e) => e.config), logLevel };
  if (stateDir !== undefined) config.stateDir = stateDir;
  if (sandbox) config.sandbox = true;
  if (logFormat !== undefined) config.logFormat = logFormat;
  if (apiSocket !== undefined) config.slirp4netnsApiSocket = apiSocket;
  const apiConfig = managementApi(api, apiListen, apiTokenFile, sawNetdev, env, uid, readFile, dashboard);
  if (apiConfig) config.api = apiConfig;
  // the default sockets (hub0.sock, api.sock) come only with the default netdevs
  if (sawNetdev) return { action: "run", config };
  return { action: "run", config, runtimeDir: defaultRuntimeDir(env, uid) };
}

/**
 * The management API: `--api PATH` (or the default path when usernet runs its defaults,
 * as `npm start` does; `--api off` turns it off), and/or `--api-listen HOST:PORT`,
 * which needs `--api-token-file` (the token is the file's first line); `--dashboard
 * HOST:PORT` takes that token too when there is one, else makes its own at start.
 */
function managementApi(
  api: string | undefined,
  listen: { host: string; port: number } | undefined,
  tokenFile: string | undefined,
  sawNetdev: boolean,
  env: NodeJS.ProcessEnv,
  uid: number,
  readFile: (path: string) => string,
  dashboard?: { host: string; port: number },
): ApiConfig | undefined {
  const out: ApiConfig = {};
  if (dashboard !== undefined) out.dashboard = dashboard;
  if (api !== undefined && api !== "off") out.socket = api;
  else if (api === undefined && !sawNetdev) out.socket = defaultApiSocketPath(env, uid);
  if (listen !== undefined || (dashboard !== undefined && tokenFile !== undefined)) {
    if (tokenFile === undefined) {
      throw new UsageError(
        `--api-listen ${listen?.host}:${listen?.port}: a TCP API needs a token: add ${valued["api-token-file"]?.display} ${valued["api-token-file"]?.form}`,
      );
    }
    let text: string;
    try {
      text = readFile(tokenFile);
    } catch (e) {
      throw new UsageError(
        `--api-token-file ${tokenFile}: cannot read: ${e instanceof Error ? e.message : e}`,
      );
    }
    const token = text.split("\n", 1)[0]?.trim() ?? "";
    if (token.length < 16) {
      throw new UsageError(
        `--api-token-file ${tokenFile}: the token (its first line) needs at least 16 characters`,
      );
    }
    if (listen !== undefined) out.listen = listen;
    out.token = token;
  } else if (tokenFile !== undefined) {
    throw new UsageError(
      `--api-token-file ${tokenFile}: only useful with --api-listen HOST:PORT or --dashboard HOST:PORT`,
    );
  }
  return out.socket === undefined && out.listen === undefined && out.dashboard === undefined
    ? undefined
    : out;
}
