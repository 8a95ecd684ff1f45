// `npm run build`: bundles each service's TypeScript (and the workspace packages it imports) into one ES module,
// services/<name>/dist/main.mjs, for the production image, which then needs only production dependencies: every
// third-party import stays external and must be a production dependency of some workspace (checked here, so a
// package used at run time but listed under devDependencies fails the build instead of the pod).
import { readdirSync, readFileSync } from "node:fs";
import { builtinModules } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { build, type Plugin } from "esbuild";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const workspaceDirs = ["packages", "services"].flatMap((d) =>
  readdirSync(path.join(root, d), { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .map((e) => path.join(root, d, e.name)),
);
const manifests = [root, ...workspaceDirs].map(
  (dir) => JSON.parse(readFileSync(path.join(dir, "package.json"), "utf8")) as { dependencies?: Record<string, string> },
);
const productionDeps = new Set(manifests.flatMap((m) => Object.keys(m.dependencies ?? {})));
const builtins = new Set(builtinModules);

/** The package a bare import names: "@scope/name/sub" → "@scope/name", "name/sub" → "name". */
const packageOf = (spec: string) =>
  spec
    .split("/")
    .slice(0, spec.startsWith("@") ? 2 : 1)
    .join("/");

const externalThirdParty: Plugin = {
  name: "external-third-party",
  setup(b) {
    b.onResolve({ filter: /^[^./]/ }, (args) => {
      if (args.path.startsWith("node:") || builtins.has(args.path)) return { external: true };
      const pkg = packageOf(args.path);
      // Workspace packages are TypeScript sources: bundle them.
      if (pkg.startsWith("@unclip/")) return undefined;
      if (!productionDeps.has(pkg)) {
        return {
          errors: [{ text: `${pkg} is imported by ${path.relative(root, args.importer)} but is no workspace's production dependency` }],
        };
      }
      return { external: true };
    });
  },
};

const services = readdirSync(path.join(root, "services"));
await Promise.all(
  services.map((name) =>
    build({
      entryPoints: [path.join(root, "services", name, "src", "main.ts")],
      // Same depth as src/main.ts, so paths the code resolves from import.meta.url (default bundles, model cache) hold.
      outfile: path.join(root, "services", name, "dist", "main.mjs"),
      bundle: true,
      platform: "node",
      format: "esm",
      target: "node20",
      sourcemap: true,
      logLevel: "warning",
      plugins: [externalThirdParty],
    }),
  ),
);
console.log(`built ${services.map((s) => `services/${s}/dist/main.mjs`).join(", ")}`);
