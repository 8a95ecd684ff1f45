import path from "node:path";
import { startFarmStack } from "./farm-stack.js";

/** `npm run farm`: the demo's farm, kept running until Ctrl-C; talk to it with `npm run unclip -- render "…"`. */
const logDir = path.resolve(process.env.INIT_CWD ?? process.cwd(), "out", "logs");
const farm = await startFarmStack({ logDir, grpcPort: Number(process.env.UNCLIP_GRPC_PORT ?? 50051) });
console.log(`farm running: gateway ${farm.grpcAddress}, nats ${farm.nats.url}, s3 ${farm.s3.endpoint}; logs in ${logDir}`);
for (const [name, proc] of farm.services)
  console.log(`  ${name.padEnd(15)} pid ${proc.child.pid}  metrics :${String(proc.ready.metricsPort)}`);
console.log(`try: npm run unclip -- -a ${farm.grpcAddress} render "a red circle on a blue background"   (Ctrl-C stops the farm)`);
let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  console.log("stopping the farm …");
  await farm.stop();
  process.exit(0);
};
process.on("SIGINT", stop).on("SIGTERM", stop);
