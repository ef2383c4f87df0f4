# The runtime image, built from the release tarball rather than from source:
#   scripts/release && docker build -t fusebox:$(cat VERSION) .
# The binary carries the Swift runtime, so the image needs only glibc (Debian 12,
# as the build machine) and libsqlite3.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends libsqlite3-0 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin fusebox \
 && install -d -o 10001 -g 10001 -m 0750 /run/fusebox /var/lib/fusebox
ARG VERSION=0.1.0
ARG ARCH=x86_64
ADD .build-release/dist/fusebox-${VERSION}-linux-${ARCH}.tar.gz /opt/
RUN ln -s /opt/fusebox-${VERSION}-linux-${ARCH}/bin/fusebox /usr/local/bin/fusebox
ENV FUSEBOX_SOCKET=/run/fusebox/fusebox.sock \
    FUSEBOX_ADMIN_SOCKET=/run/fusebox/fusebox-admin.sock \
    FUSEBOX_HTTP=0.0.0.0:9464 \
    FUSEBOX_STORE=/var/lib/fusebox/fusebox.db
USER 10001:10001
EXPOSE 9464
VOLUME ["/run/fusebox", "/var/lib/fusebox"]
ENTRYPOINT ["/usr/local/bin/fusebox"]
CMD ["serve"]
