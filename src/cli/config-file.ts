/**
 * `--config FILE`: the same options as the command line, written in a file.
 *
 * Tokens are separated by whitespace (newlines included). `#` at the start of a token
 * comments out the rest of the line. "..." quotes a value with spaces (inside it, \"
 * and \\ are the only escapes); '...' quotes literally. Quoted and unquoted parts next
 * to each other join into one token, as in a shell: hostname="my guest" is one token.
 * No variables, no globbing, no line continuations: nothing here runs.
 */
import { UsageError } from "./usage-error.js";

export function tokenizeConfigFile(text: string, where: string): string[] {
  const tokens: string[] = [];
  let cur: string | undefined;
  let line = 1;
  let i = 0;
  const n = text.length;
  while (i < n) {
    const ch = text[i] as string;
    if (ch === "\n" || ch === " " || ch === "\t" || ch === "\r" || ch === "\f" || ch === "\v") {
      if (ch === "\n") line++;
      if (cur !== undefined) tokens.push(cur);
      cur = undefined;
      i++;
    } else if (ch === "#" && cur === undefined) {
      while (i < n && text[i] !== "\n") i++;
    } else if (ch === '"' || ch === "'") {
      const start = line;
      let j = i + 1;
      let part = "";
      for (;;) {
        if (j >= n) throw new UsageError(`${where}: line ${start}: unterminated ${ch} quote`);
        const c = text[j] as string;
        if (c === ch) break;
        if (c === "\n") line++;
        if (ch === '"' && c === "\\" && (text[j + 1] === '"' || text[j + 1] === "\\")) {
          part += text[j + 1];
          j += 2;
        } else {
          part += c;
          j++;
        }
      }
      cur = (cur ?? "") + part;
      i = j + 1;
    } else {
      cur = (cur ?? "") + ch;
      i++;
    }
  }
  if (cur !== undefined) tokens.push(cur);
  return tokens;
}
