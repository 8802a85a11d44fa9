# The job image: Kiln's five executables and what they run with (libgit2
# 1.8 from bookworm-backports, enabled from the image's own Debian mirror by
# scripts/libgit2-backports; libcurl, Packer, Ansible). Every step is
# scripts/install-runtime, which the tests also run, so this recipe is
# tested where no image can be built.
# The build image's Swift matches the one the project is built and tested
# with (6.3); the package itself needs tools version 6.0.
FROM swift:6.3-bookworm AS build
WORKDIR /src
COPY . .
RUN scripts/install-runtime --prefix /opt/kiln

FROM debian:bookworm-slim
COPY scripts/install-runtime scripts/libgit2-backports /opt/kiln/share/kiln/
RUN /opt/kiln/share/kiln/install-runtime --runtime-only && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/kiln /opt/kiln
ENV PATH=/opt/kiln/bin:$PATH
