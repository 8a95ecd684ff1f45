export { startNatsServer, findNatsServer, type NatsServerHandle } from "./nats-server.js";
export { startS3Server, type S3ServerHandle } from "./s3-server.js";
export { startService, repoRoot, type ServiceName, type ServiceProcess } from "./service-process.js";
export { startFarmStack, type FarmStack, type FarmStackOptions } from "./farm-stack.js";
