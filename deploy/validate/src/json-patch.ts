/** RFC 6902 JSON Patch on a copy of the document (add, remove, replace, move, copy, test). */
export interface JsonPatchOp {
  op: "add" | "remove" | "replace" | "move" | "copy" | "test";
  path: string;
  from?: string;
  value?: unknown;
}

export class JsonPatchError extends Error {
  override name = "JsonPatchError";
}

type Container = Record<string, unknown> | unknown[];

function tokens(pointer: string, where: string): string[] {
  if (pointer === "") return [];
  if (!pointer.startsWith("/")) throw new JsonPatchError(`${where}: ${JSON.stringify(pointer)} is not a JSON pointer`);
  return pointer
    .slice(1)
    .split("/")
    .map((t) => t.replace(/~1/g, "/").replace(/~0/g, "~"));
}

/** The container holding the pointer's last token, and that token; the parent must exist. */
function locate(doc: unknown, pointer: string, where: string): { parent: Container; key: string } {
  const path = tokens(pointer, where);
  if (path.length === 0) throw new JsonPatchError(`${where}: the whole document cannot be patched`);
  let node: unknown = doc;
  for (const t of path.slice(0, -1)) {
    node = Array.isArray(node) ? node[index(node, t, where, false)] : (node as Record<string, unknown> | undefined)?.[t];
    if (node === undefined || node === null || typeof node !== "object") {
      throw new JsonPatchError(`${where}: ${pointer}: ${t} does not exist`);
    }
  }
  return { parent: node as Container, key: path[path.length - 1]! };
}

function index(arr: unknown[], token: string, where: string, forAdd: boolean): number {
  if (forAdd && token === "-") return arr.length;
  if (!/^(0|[1-9]\d*)$/.test(token)) throw new JsonPatchError(`${where}: ${token} is not an array index`);
  const i = Number(token);
  if (i > arr.length || (!forAdd && i === arr.length)) throw new JsonPatchError(`${where}: index ${i} out of range`);
  return i;
}

function get(doc: unknown, pointer: string, where: string): unknown {
  const { parent, key } = locate(doc, pointer, where);
  const v = Array.isArray(parent) ? parent[index(parent, key, where, false)] : parent[key];
  if (v === undefined) throw new JsonPatchError(`${where}: ${pointer} does not exist`);
  return v;
}

function add(doc: unknown, pointer: string, value: unknown, where: string): void {
  const { parent, key } = locate(doc, pointer, where);
  if (Array.isArray(parent)) parent.splice(index(parent, key, where, true), 0, value);
  else parent[key] = value;
}

function remove(doc: unknown, pointer: string, where: string): void {
  const { parent, key } = locate(doc, pointer, where);
  if (Array.isArray(parent)) parent.splice(index(parent, key, where, false), 1);
  else {
    if (!(key in parent)) throw new JsonPatchError(`${where}: ${pointer} does not exist`);
    delete parent[key];
  }
}

export function applyJsonPatch<T>(document: T, ops: JsonPatchOp[], where: string): T {
  const doc = structuredClone(document);
  for (const [i, op] of ops.entries()) {
    const at = `${where} op ${i} (${op.op} ${op.path})`;
    switch (op.op) {
      case "add":
        add(doc, op.path, structuredClone(op.value), at);
        break;
      case "remove":
        remove(doc, op.path, at);
        break;
      case "replace":
        get(doc, op.path, at);
        remove(doc, op.path, at);
        add(doc, op.path, structuredClone(op.value), at);
        break;
      case "move": {
        const v = get(doc, op.from!, at);
        remove(doc, op.from!, at);
        add(doc, op.path, v, at);
        break;
      }
      case "copy":
        add(doc, op.path, structuredClone(get(doc, op.from!, at)), at);
        break;
      case "test":
        if (JSON.stringify(get(doc, op.path, at)) !== JSON.stringify(op.value)) throw new JsonPatchError(`${at}: test failed`);
        break;
      default:
        throw new JsonPatchError(`${at}: unknown op`);
    }
  }
  return doc;
}
