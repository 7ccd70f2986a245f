// A small YAML emitter for JSON-like data (null, booleans, numbers, strings, arrays, plain
// objects). Its output is block-style YAML that PyYAML's safe_load reads back as the same value,
// with mapping keys in the order they were given. Parsing is not done here: the console sends
// YAML to the server (POST /api/workflows/validate), which parses it with the engine's loader.

const INDENT = 2;

// Words YAML 1.1 (PyYAML) reads as null or booleans, plus y/n that other YAML readers treat as
// booleans: any casing of these is quoted.
const RESERVED = new Set(["null", "~", "true", "false", "yes", "no", "on", "off", "y", "n"]);

// A plain (unquoted) scalar: starts with a letter or underscore, then only characters that have
// no meaning in block context. Anything else is double-quoted, which is always safe.
const PLAIN = /^[A-Za-z_][A-Za-z0-9_ .\/\-,()'!?+@$%&;]*$/;

/** Emit `value` as a YAML document (ends with a newline). */
export function toYaml(value) {
  if (isContainer(value) && !isEmpty(value)) {
    return block(value, 0).join("\n") + "\n";
  }
  return scalar(value) + "\n";
}

/** One scalar, or an empty container, as it appears after `key: ` or `- `. */
export function scalar(value) {
  if (value === null || value === undefined) return "null";
  if (typeof value === "boolean") return value ? "true" : "false";
  if (typeof value === "number") return number(value);
  if (typeof value === "string") return quoted(value);
  if (Array.isArray(value)) return "[]";
  if (typeof value === "object") return "{}";
  throw new TypeError(`cannot write a ${typeof value} as YAML`);
}

function number(n) {
  if (Number.isNaN(n)) return ".nan";
  if (n === Infinity) return ".inf";
  if (n === -Infinity) return "-.inf";
  const text = String(n);
  // PyYAML reads a float only with a dot: 1e+21 would be a string, 1.0e+21 is a float.
  if (/e/.test(text) && !text.includes(".")) return text.replace("e", ".0e");
  return text;
}

/** A string as a plain scalar when that reads back as the same string, else double-quoted. */
export function quoted(text) {
  if (PLAIN.test(text) && !text.endsWith(" ") && !RESERVED.has(text.toLowerCase())) return text;
  return doubleQuoted(text);
}

function doubleQuoted(text) {
  let out = '"';
  for (const ch of text) {
    const code = ch.codePointAt(0);
    if (ch === '"') out += '\\"';
    else if (ch === "\\") out += "\\\\";
    else if (ch === "\n") out += "\\n";
    else if (ch === "\t") out += "\\t";
    else if (ch === "\r") out += "\\r";
    else if (needsEscape(code)) out += "\\u" + code.toString(16).padStart(4, "0");
    else out += ch;
  }
  return out + '"';
}

// Control characters, C1 controls (NEL is a YAML line break), line/paragraph separators, the BOM,
// non-characters and lone surrogates: PyYAML refuses or folds them unless escaped.
function needsEscape(code) {
  return (
    code < 0x20 ||
    (code >= 0x7f && code <= 0x9f) ||
    code === 0x2028 ||
    code === 0x2029 ||
    code === 0xfeff ||
    code === 0xfffe ||
    code === 0xffff ||
    (code >= 0xd800 && code <= 0xdfff)
  );
}

// A multi-line string written as a literal block (`|` or `|-`) when that is exact: no carriage
// returns, nothing that needs escaping, no leading blank or whitespace-only lines, at most one
// trailing newline.
function literalLines(text) {
  if (!text.includes("\n") || text.includes("\r") || /\n\n$/.test(text)) return null;
  for (const ch of text) {
    const code = ch.codePointAt(0);
    if (ch !== "\n" && ch !== "\t" && needsEscape(code)) return null;
  }
  const body = text.endsWith("\n") ? text.slice(0, -1) : text;
  const lines = body.split("\n");
  if (/^\s/.test(lines[0]) || lines.some((line) => line !== "" && line.trim() === "")) return null;
  if (lines[lines.length - 1] === "") return null;
  return { header: text.endsWith("\n") ? "|" : "|-", lines };
}

function isContainer(value) {
  return value !== null && typeof value === "object";
}

function isEmpty(value) {
  return Array.isArray(value) ? value.length === 0 : Object.keys(value).length === 0;
}

function block(value, indent) {
  return Array.isArray(value) ? sequence(value, indent) : mapping(value, indent);
}

// `head` is what comes before the value (`key:` or `-`); the result is the lines of the entry.
function entry(head, value, indent) {
  const pad = " ".repeat(indent);
  if (isContainer(value) && !isEmpty(value)) {
    return [`${pad}${head}`, ...block(value, indent + INDENT)];
  }
  const literal = typeof value === "string" ? literalLines(value) : null;
  if (literal) {
    const inner = " ".repeat(indent + INDENT);
    return [`${pad}${head} ${literal.header}`, ...literal.lines.map((line) => (line ? inner + line : ""))];
  }
  return [`${pad}${head} ${scalar(value)}`];
}

function mapping(object, indent) {
  const lines = [];
  for (const [key, value] of Object.entries(object)) {
    lines.push(...entry(`${quoted(key)}:`, value, indent));
  }
  return lines;
}

function sequence(items, indent) {
  const pad = " ".repeat(indent);
  const lines = [];
  for (const item of items) {
    if (isContainer(item) && !isEmpty(item)) {
      // The item's first line moves up onto the dash: `- name: a` / `  action: b`.
      const inner = block(item, indent + INDENT);
      lines.push(`${pad}- ${inner[0].slice(indent + INDENT)}`, ...inner.slice(1));
    } else {
      lines.push(...entry("-", item, indent));
    }
  }
  return lines;
}
