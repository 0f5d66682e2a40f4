# python.Dockerfile - the container test's stand-in for the CRMs' side: Debian 12's python3,
# nothing else. tests/containers/containers_test.sh runs the fake amoCRM and fake Hollihop
# (tests/fake, mounted read-only) in it, on server A's network, as user nobody.
FROM debian:12-slim
RUN export DEBIAN_FRONTEND=noninteractive && apt-get update -qq && \
    apt-get install -y -qq --no-install-recommends python3 && \
    apt-get clean && rm -rf /var/lib/apt/lists/*
USER 65534:65534
ENTRYPOINT ["python3"]
