# The runtime image, built from the release tarball rather than from source:
#   scripts/release && docker build --build-arg VERSION=$(cat VERSION) --build-arg ARCH=$(uname -m) -t fusebox:$(cat VERSION) .
# The binary carries the Swift runtime, so the image needs only glibc (Debian 12,
# as the build machine) and libsqlite3.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends libsqlite3-0 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin fusebox \
 && install -d -o 10001 -g 10001 -m 0750 /run/fusebox /var/lib/fusebox
# Which tarball: no defaults, so an image never says one version and holds another.
ARG VERSION
ARG ARCH
RUN test -n "$VERSION" -a -n "$ARCH" \
 || { echo "build with --build-arg VERSION=\$(cat VERSION) --build-arg ARCH=\$(uname -m)" >&2; exit 1; }
LABEL org.opencontainers.image.title="fusebox" \
      org.opencontainers.image.description="Circuit-breaker sidecar: breakers over a Unix socket, transition logs, Prometheus metrics, incident history" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
ADD .build-release/dist/fusebox-${VERSION}-linux-${ARCH}.tar.gz /opt/
RUN ln -s /opt/fusebox-${VERSION}-linux-${ARCH}/bin/fusebox /usr/local/bin/fusebox
ENV FUSEBOX_SOCKET=/run/fusebox/fusebox.sock \
    FUSEBOX_ADMIN_SOCKET=/run/fusebox/fusebox-admin.sock \
    FUSEBOX_HTTP=0.0.0.0:9464 \
    FUSEBOX_STORE=/var/lib/fusebox/fusebox.db
USER 10001:10001
EXPOSE 9464
# /healthz on the HTTP listener above, with bash alone (the image has no curl); change the port here
# if FUSEBOX_HTTP is overridden.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/9464 && printf 'GET /healthz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && head -1 <&3 | grep -q ' 200 '"]
VOLUME ["/run/fusebox", "/var/lib/fusebox"]
ENTRYPOINT ["/usr/local/bin/fusebox"]
CMD ["serve"]
