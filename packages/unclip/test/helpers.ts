import path from "node:path";
import { fileURLToPath } from "node:url";

export const TINY_BUNDLE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../models/tiny-random");
