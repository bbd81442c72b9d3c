# shellcheck shell=bash
# apt_install PKG...: installs Debian packages for a test suite, riding out a
# mirror or resolver that is briefly unreachable. Each attempt refreshes the
# package lists first when the install fails; attempts back off from 15 s to
# two minutes (about eight minutes in all) before giving up. Waits for another
# apt holding the dpkg lock (suites install side by side). Output goes to
# stdout/stderr; callers redirect it.
apt_install() {
    export DEBIAN_FRONTEND=noninteractive
    local apt=(apt-get -o DPkg::Lock::Timeout=600 -o Acquire::Retries=3)
    local attempt delay=15
    for attempt in 1 2 3 4 5 6; do
        "${apt[@]}" install -y -qq --no-install-recommends "$@" && return 0
        "${apt[@]}" update -qq &&
            "${apt[@]}" install -y -qq --no-install-recommends "$@" && return 0
        [ "$attempt" = 6 ] && break
        echo "# apt-get install $* failed (attempt $attempt); retrying in ${delay}s" >&2
        sleep "$delay"
        delay=$((delay * 2 > 120 ? 120 : delay * 2))
    done
    return 1
}

# apt_install_pinned_qemu PKG...: installs PKG with Debian 12's QEMU tools
# pinned to the version its QEMU packages have (a newer qemu-utils from
# backports would hold the QEMU packages back).
apt_install_pinned_qemu() {
    local v
    apt-get -o DPkg::Lock::Timeout=600 update -qq || true
    v=$(apt-cache policy qemu-system-common | awk '/Candidate/ {print $2}')
    apt_install --allow-downgrades "$@" "qemu-utils=$v" "qemu-block-extra=$v"
}
