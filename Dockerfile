# syntax=docker/dockerfile:1
#
# unclip-farm: one image for every process. The default command runs the gateway; a worker is chosen by overriding
# the command (Kubernetes `command:`), e.g.
#   docker run --rm unclip-farm node --enable-source-maps services/prior-worker/dist/main.mjs
# Services: gateway (gRPC 50051, metrics 9464), prior-worker (9465), decoder-worker (9466), upscale-worker (9467).
# All configuration is UNCLIP_* environment variables (see deploy/k8s/config.yaml); unknown UNCLIP_* names are refused.
#
# What runs is compiled JavaScript: `npm run build` bundles each service's TypeScript into services/<name>/dist/main.mjs
# (tools/build-services.ts), and the runtime stage installs production dependencies only. The ESRGAN upscaler is
# converted from its npm package at build time (the `postinstall` of `npm ci`), so no pod converts it at start.
# Bundles in the image: models/shapes-v1 (prior and decoder), models/shapes-upsamplers (its upsamplers) and the
# converted ESRGAN models in models/.cache (the upscaler of every other bundle's images).
#
#   docker build -t unclip-farm:0.1.0 .                                   # CPU image (gateway, CPU workers)
#   docker build --target cuda --build-arg ORT_CUDA_URL=... -t unclip-farm-cuda:0.1.0 .   # GPU workers, see below

ARG NODE_IMAGE=node:20-bookworm-slim
ARG CUDA_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu22.04

# Only the package manifests, so the production dependency layer is rebuilt when they change, not on every edit.
FROM ${NODE_IMAGE} AS manifests
WORKDIR /src
COPY . .
RUN mkdir /manifests \
 && find . -name package.json -not -path '*/node_modules/*' -exec cp --parents {} /manifests/ \; \
 && cp package-lock.json .npmrc /manifests/

# Everything, dev dependencies included: generate, build the bundles, convert ESRGAN.
FROM ${NODE_IMAGE} AS build
WORKDIR /src
ENV ONNXRUNTIME_NODE_INSTALL=skip \
    npm_config_onnxruntime_node_install=skip \
    npm_config_update_notifier=false \
    TURBO_TELEMETRY_DISABLED=1
COPY . .
RUN --mount=type=cache,target=/root/.npm \
    npm ci --no-audit --no-fund \
 && test -f models/.cache/esrgan-slim-x4/manifest.json \
 && npm run build

FROM ${NODE_IMAGE} AS prod-deps
WORKDIR /app
ENV ONNXRUNTIME_NODE_INSTALL=skip \
    npm_config_onnxruntime_node_install=skip \
    npm_config_update_notifier=false
COPY --from=manifests /manifests/ ./
# No install scripts: the only one the runtime needs ran in the build stage (ESRGAN conversion, copied below);
# onnxruntime-node's CPU build and sharp's libvips arrive as package files.
RUN --mount=type=cache,target=/root/.npm \
    npm ci --omit=dev --ignore-scripts --no-audit --no-fund

# The image's files: production dependencies, the bundles, the models. Both targets below start from it.
FROM ${NODE_IMAGE} AS app
WORKDIR /app
# tini reaps children and forwards SIGTERM so the processes can drain and exit 0.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=prod-deps /app/ ./
COPY --from=build /src/services/gateway/dist/ services/gateway/dist/
COPY --from=build /src/services/prior-worker/dist/ services/prior-worker/dist/
COPY --from=build /src/services/decoder-worker/dist/ services/decoder-worker/dist/
COPY --from=build /src/services/upscale-worker/dist/ services/upscale-worker/dist/
COPY --from=build /src/models/shapes-v1/ models/shapes-v1/
COPY --from=build /src/models/shapes-upsamplers/ models/shapes-upsamplers/
COPY --from=build --chown=node:node /src/models/.cache/ models/.cache/

# ---------------------------------------------------------------------------------------------------------------------
# GPU target for the model worker pools (the gateway never needs it). Build it where the CUDA execution provider can be
# fetched: onnxruntime-node ships only its CPU build in the npm package; the CUDA provider libraries
# (libonnxruntime_providers_{shared,cuda}.so) come from the Microsoft.ML.OnnxRuntime.Gpu.Linux NuGet package whose
# version equals onnxruntime-node's in package-lock.json (1.30.0). Put that .nupkg on a mirror you trust and pass its
# URL; the base image brings the CUDA 12 runtime and cuDNN 9 user-space libraries (the NVIDIA container toolkit
# injects only the driver). Check on a GPU node: the worker's start-up log ("model bundle loaded") names the execution
# provider it really got; a missing provider falls back to the CPU with a log line and the GPU sits idle.
# ---------------------------------------------------------------------------------------------------------------------
FROM ${CUDA_IMAGE} AS cuda
ARG ORT_CUDA_URL
ARG NODE_VERSION=20.19.5
RUN test -n "${ORT_CUDA_URL}" || (echo "build the cuda target with --build-arg ORT_CUDA_URL=<Microsoft.ML.OnnxRuntime.Gpu.Linux 1.30.0 .nupkg>" >&2; exit 1)
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini ca-certificates curl unzip xz-utils \
 && curl -fsSL "https://nodejs.org/dist/v${NODE_VERSION}/node-v${NODE_VERSION}-linux-x64.tar.xz" | tar -xJ -C /usr/local --strip-components=1 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 1000 node
WORKDIR /app
ENV NODE_ENV=production UNCLIP_EXECUTION_PROVIDER=cuda
COPY --from=app /app/ ./
RUN curl -fsSL "${ORT_CUDA_URL}" -o /tmp/ort.nupkg \
 && dir="$(dirname "$(find node_modules/onnxruntime-node/bin -name onnxruntime_binding.node -path '*linux/x64*')")" \
 && unzip -j /tmp/ort.nupkg 'runtimes/linux-x64/native/libonnxruntime_providers_*.so' -d "$dir" \
 && rm /tmp/ort.nupkg
USER node
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "--enable-source-maps", "services/decoder-worker/dist/main.mjs"]

# The default target (last stage): the CPU image.
FROM app AS runtime
ENV NODE_ENV=production
USER node
EXPOSE 50051 9464 9465 9466 9467
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "--enable-source-maps", "services/gateway/dist/main.mjs"]
