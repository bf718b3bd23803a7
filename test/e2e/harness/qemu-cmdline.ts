/**
 * Reading the QEMU command lines usernet prints ("attach a guest with …") the way a
 * user's shell would, so a test can boot a guest with exactly those network options.
 *
 * `splitShellWords` handles what a pasteable POSIX line uses: single and double quotes,
 * backslash escapes, and a `#` comment at the start of a word. `guestNetworkArgs`
 * keeps the network options of such a line and drops the binary, the "..." placeholder
 * and whatever the harness owns (kernel, initrd, command line, accelerator, display,
 * serial, memory).
 */

/** Splits one shell command line into words; throws on an unterminated quote. */
export function splitShellWords(line: string): string[] {
  const words: string[] = [];
  let cur = "";
  let inWord = false;
  let i = 0;
  while (i < line.length) {
    const c = line[i] as string;
    if (c === " " || c === "\t" || c === "\n") {
      if (inWord) words.push(cur);
      cur = "";
      inWord = false;
      i++;
    } else if (c === "#" && !inWord) {
      break;
    } else if (c === "'") {
      const j = line.indexOf("'", i + 1);
      if (j < 0) throw new Error(`unterminated ' in: ${line}`);
      cur += line.slice(i + 1, j);
      inWord = true;
      i = j + 1;
    } else if (c === '"') {
      i++;
      for (;;) {
        if (i >= line.length) throw new Error(`unterminated " in: ${line}`);
        const d = line[i] as string;
        if (d === '"') break;
        if (d === "\\" && i + 1 < line.length && '"\\$`\n'.includes(line[i + 1] as string)) {
          cur += line[i + 1];
          i += 2;
        } else {
          cur += d;
          i++;
        }
      }
      inWord = true;
      i++;
    } else if (c === "\\") {
      if (i + 1 < line.length) cur += line[i + 1];
      inWord = true;
      i += 2;
    } else {
      cur += c;
      inWord = true;
      i++;
    }
  }
  if (inWord) words.push(cur);
  return words;
}

/** options whose argument the harness supplies itself */
const ownedWithValue = new Set([
  "-kernel",
  "-initrd",
  "-append",
  "-accel",
  "-machine",
  "-M",
  "-display",
  "-serial",
  "-monitor",
  "-chardev",
  "-m",
  "-cpu",
  "-smp",
  "-drive",
  "-hda",
  "-cdrom",
  "-boot",
]);
const ownedFlags = new Set([
  "-enable-kvm",
  "-nographic",
  "-nodefaults",
  "-no-user-config",
  "-no-reboot",
  "-daemonize",
]);

/**
 * The network options of a printed QEMU line (`qemu-system-x86_64 ... -netdev X
 * -device Y  # comment` → ["-netdev", "X", "-device", "Y"]).
 */
export function guestNetworkArgs(line: string): string[] {
  const words = splitShellWords(line);
  if (!/qemu-system-/.test(words[0] ?? "")) throw new Error(`not a QEMU command line: ${line}`);
  const out: string[] = [];
  for (let i = 1; i < words.length; i++) {
    const w = words[i] as string;
    if (w === "...") continue;
    if (ownedFlags.has(w)) continue;
    if (ownedWithValue.has(w)) {
      i++;
      continue;
    }
    out.push(w);
  }
  return out;
}

/** The lines of some output that are QEMU command lines. */
export function qemuLines(output: string): string[] {
  return output
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => /^qemu-system-\S+\s/.test(l));
}
