# The pinned image `nox -s stress` runs every scenario in (`nox -s image` builds it alone).
#
# The build needs no network: `nox -s image` first fills ci/wheelhouse/ on the host with the
# wheels that ci/requirements.txt pins (for Python 3.13 on linux) plus a wheel of this project,
# and pip installs only those, checking each dependency against the lock's hashes.
#
# Default base: the official Python image, pinned by digest; `nox -s pin` refreshes the digest
# where a registry answers. Machines that cannot pull build a base from Debian's packages
# (bash ci/build-base-image.sh) and pass it: --build-arg BASE_IMAGE=stress-kit-base:trixie.
# Any base works that has Python 3.13 as `python3` with the venv module.
ARG BASE_IMAGE=python:3.13-slim-trixie@sha256:9d2e5553305c7c7b0097999bb17187c69b921ccd6bc9d40e4bb5ebe652c00285

FROM ${BASE_IMAGE} AS build
# Debian's interpreter is /usr/bin/python3 and the official image's /usr/local/bin/python3; a
# venv made from whichever `python3` the base has gives the runtime stage one fixed path.
RUN python3 -m venv /opt/venv
# Dependencies before the project, so editing the project rebuilds only the last layers.
COPY ci/requirements.txt /tmp/requirements.txt
COPY ci/wheelhouse/deps/ /wheelhouse/deps/
RUN /opt/venv/bin/python -m pip install --no-cache-dir --no-index --require-hashes \
        --find-links /wheelhouse/deps --requirement /tmp/requirements.txt
# The project's wheel is built on the host just before this build, so no committed lock can
# hold its hash. --no-deps keeps the hash guarantee whole: every dependency was installed from
# the lock above, and `pip check` fails the build if the wheel needs anything the lock lacks.
COPY ci/wheelhouse/project/ /wheelhouse/project/
RUN /opt/venv/bin/python -m pip install --no-cache-dir --no-index --no-deps \
        /wheelhouse/project/asyncio_stress_kit-*.whl \
    && /opt/venv/bin/python -m pip check \
    && /opt/venv/bin/python -m pip uninstall --yes --quiet pip

FROM ${BASE_IMAGE} AS runtime
# The driver runs the container as the host user so results come out owned by them; this user
# is for plain `docker run` without --user.
RUN useradd --uid 10001 --user-group --create-home --home-dir /home/stress \
        --shell /usr/sbin/nologin stress \
    && install -d -o stress -g stress /results
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    STRESS_IN_CONTAINER=1
# Late, so a new revision relabels the image without rebuilding the layers above.
ARG VCS_REF=unknown
ARG SOURCE_URL=""
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="asyncio-stress-kit" \
      org.opencontainers.image.description="Stress-test and profile asyncio streaming systems (memray, py-spy)" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${VCS_REF}" \
      org.opencontainers.image.source="${SOURCE_URL}"
WORKDIR /results
USER 10001:10001
ENTRYPOINT ["python", "-m", "stress"]
CMD ["run", "--out", "/results"]
