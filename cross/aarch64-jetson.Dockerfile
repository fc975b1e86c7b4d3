# The image `cross build --target aarch64-unknown-linux-gnu` uses for FlowCloud's edge crates
# (Cross.toml at the workspace root points here; cross/README.md explains the choices).
#
# On top of cross's own aarch64 image (Ubuntu 20.04, glibc 2.31, so binaries also run on
# JetPack 5's Ubuntu 20.04 and JetPack 6's 22.04), it adds:
#  - the C/C++ cross toolchain openh264's build script needs (g++ for aarch64, pkg-config);
#  - for the `argus` feature: the L4T Multimedia API headers (Argus, NvBufSurface) and the
#    aarch64 libraries they link against, unpacked from NVIDIA's Jetson apt repository into
#    /opt/l4t without installing them (their maintainer scripts expect a real Jetson).
#
# Build arguments: JETPACK (5 or 6) picks the L4T release (JetPack 5 = L4T r35, JetPack 6 =
# L4T r36); L4T_RELEASE overrides it (e.g. r35.4); L4T_SOC is the SoC repository (t234 = Orin,
# t194 = Xavier, JetPack 5 only).
ARG CROSS_BASE_IMAGE=ghcr.io/cross-rs/aarch64-unknown-linux-gnu:0.2.5
FROM ${CROSS_BASE_IMAGE}

ARG JETPACK=6
ARG L4T_RELEASE=
ARG L4T_SOC=t234

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# Debian/Ubuntu package versions move with the base image; pinning them here would only break
# the build when the archive drops a version.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        ca-certificates curl gnupg pkg-config g++-aarch64-linux-gnu \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /tmp/l4t

# NVIDIA's repository serves arm64 only; Ubuntu's amd64 mirrors must not be asked for arm64
# indexes, so they are restricted to amd64 before the architecture is added.
# hadolint ignore=DL3008
RUN release="${L4T_RELEASE}" \
    && if [[ -z "$release" ]]; then \
         case "${JETPACK}" in \
           5) release=r35.6 ;; \
           6) release=r36.4 ;; \
           *) echo "JETPACK must be 5 or 6, not '${JETPACK}'" >&2; exit 1 ;; \
         esac; \
       fi \
    && curl -fsSL https://repo.download.nvidia.com/jetson/jetson-ota-public.asc \
        | gpg --dearmor -o /usr/share/keyrings/nvidia-jetson.gpg \
    && sed -i -E 's/^deb (https?:)/deb [arch=amd64] \1/' /etc/apt/sources.list \
    && dpkg --add-architecture arm64 \
    && printf 'deb [arch=arm64 signed-by=/usr/share/keyrings/nvidia-jetson.gpg] https://repo.download.nvidia.com/jetson/%s %s main\n' \
        common "$release" "${L4T_SOC}" "$release" > /etc/apt/sources.list.d/nvidia-l4t.list \
    && apt-get update \
    && mkdir -p /opt/l4t \
    && apt-get download \
        nvidia-l4t-jetson-multimedia-api:arm64 \
        nvidia-l4t-camera:arm64 \
        nvidia-l4t-multimedia:arm64 \
        nvidia-l4t-multimedia-utils:arm64 \
        nvidia-l4t-core:arm64 \
    && for deb in ./*.deb; do dpkg-deb -x "$deb" /opt/l4t; done \
    && echo "$release" > /opt/l4t/L4T_RELEASE \
    && test -d /opt/l4t/usr/src/jetson_multimedia_api/include/Argus \
    && rm -rf ./*.deb /var/lib/apt/lists/*

WORKDIR /

# Read by edge-sdk/sdk/build.rs when the `argus` feature is on.
ENV FLOWCLOUD_L4T_ROOT=/opt/l4t
