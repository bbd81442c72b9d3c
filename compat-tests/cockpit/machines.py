#!/usr/bin/python3
"""Cockpit's Machines page in headless Chromium, against the oxvirtd that
run.sh started (two domains: testos-running, running, with a pty console,
a disk and a NIC; testos-off, shut off).

usage: machines.py --url URL --artifacts DIR --uri LIBVIRT_URI --testdir DIR

Each step is one named check: "PASS name" or "FAIL name: why", with a
screenshot NN-name.png in the artifacts dir. Ends with "N passed, M
failed" and exits 1 if any failed. The element ids are cockpit-machines'
own (Debian 12's 288): vm-NAME-CONNECTION-state, -run, -shutdown-button,
-action-kebab, -forceOff, vm-NAME-cpu-model, vm-NAME-disks, ...
"""
import argparse
import json
import os
import subprocess
import sys
import time
import traceback

from selenium import webdriver
from selenium.common.exceptions import (ElementClickInterceptedException,
                                        ElementNotInteractableException,
                                        StaleElementReferenceException, WebDriverException)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select

RUNNING = "testos-running"
OFF = "testos-off"
SNAP = "testos-snap"
VNC = "testos-vnc"
CONN = "system"
CREATED = "cockpit-created"
IMPORTED = "cockpit-imported"

ap = argparse.ArgumentParser()
ap.add_argument("--url", required=True)
ap.add_argument("--artifacts", required=True)
ap.add_argument("--uri", required=True)
ap.add_argument("--testdir", required=True)
ap.add_argument("--daemon-pid", type=int, help="oxvirtd's pid: checks stop when it is gone")
ap.add_argument("--daemon-log", help="oxvirtd's log, quoted when it is gone")
ap.add_argument("--dbus-log", help="dbus-monitor's log: its failed org.libvirt calls are listed")
args = ap.parse_args()
ART = args.artifacts

results = []  # (name, ok)


class Fail(Exception):
    pass


def virsh(*a):
    p = subprocess.run(["virsh", "-c", args.uri, *a], capture_output=True, text=True,
                       timeout=30)
    return p.returncode, (p.stdout + p.stderr).strip()


def domstate(name):
    rc, out = virsh("domstate", name)
    return out.splitlines()[0] if rc == 0 and out else "(%s)" % out


# --- the browser

opts = webdriver.ChromeOptions()
opts.binary_location = "/usr/bin/chromium"
for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
          "--window-size=1280,900", "--user-data-dir=" + os.path.join(args.testdir, "chromium")):
    opts.add_argument(a)
opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
try:
    driver = webdriver.Chrome(
        service=Service("/usr/bin/chromedriver",
                        log_path=os.path.join(args.testdir, "chromedriver.log")),
        options=opts)
except WebDriverException as e:
    print("FAIL browser: chromium/chromedriver did not start: %s" % e.msg)
    print("0 passed, 1 failed")
    sys.exit(1)
driver.set_page_load_timeout(60)


console_log = []


def browser_log():
    """New browser console entries (kept for browser-console.log)."""
    try:
        new = driver.get_log("browser")
    except WebDriverException:
        new = []
    console_log.extend(new)
    return new


def uncaught(since):
    """The page's uncaught exceptions logged after console_log[since]."""
    browser_log()
    return [e["message"].split("Uncaught ", 1)[1] for e in console_log[since:]
            if e.get("level") == "SEVERE" and "Uncaught " in e.get("message", "")]


# Keeps each uncaught exception's stack in the frame, for the report.
STACK_HOOK = """
if (!window.__oxStacks) {
    window.__oxStacks = [];
    window.addEventListener('error', function (ev) {
        window.__oxStacks.push(String(ev.error && ev.error.stack || ev.message));
    });
}
"""


def frame():
    """Switch into the Machines page's iframe (its name ends in /machines)."""
    driver.switch_to.default_content()
    for f in driver.find_elements(By.TAG_NAME, "iframe"):
        if (f.get_attribute("name") or "").endswith("/machines"):
            driver.switch_to.frame(f)
            try:
                driver.execute_script(STACK_HOOK)
            except WebDriverException:
                pass
            return
    raise Fail("no iframe whose name ends in /machines")


def stacks():
    """The stacks of the uncaught exceptions seen in the frame."""
    try:
        frame()
        return driver.execute_script("return window.__oxStacks || []") or []
    except (WebDriverException, Fail):
        return []


def wait(cond, what, secs=30):
    """Poll cond() (in the Machines frame) until it returns something true."""
    end = time.time() + secs
    last = None
    mark = len(console_log)
    while True:
        try:
            frame()
            v = cond()
            if v:
                return v
        except WebDriverException as e:
            last = e
        threw = uncaught(mark)
        if threw:
            raise Fail("the page threw %s (while waiting for %s)" % (threw[-1], what))
        if time.time() > end:
            raise Fail("timed out after %ds waiting for %s%s" % (
                secs, what, " (%s)" % str(getattr(last, "msg", last)).splitlines()[0]
                if last else ""))
        time.sleep(0.25)


def by_id(i):
    els = driver.find_elements(By.ID, i)
    return els[0] if els else None


def text_of(i):
    e = by_id(i)
    return e.text.strip() if e else None


def click_id(i, what=None, secs=30):
    el = wait(lambda: (lambda e: e if e and e.is_displayed() and e.is_enabled() else None)(by_id(i)),
              what or "#" + i, secs)
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", el)
    try:
        el.click()
    except ElementClickInterceptedException:
        # Cockpit's alert toasts sit over the top right of the page, where
        # Create VM and Import VM are; a user would close them first.
        driver.execute_script("arguments[0].click()", el)


def body_text():
    frame()
    return driver.find_element(By.TAG_NAME, "body").text


def alerts():
    """Danger alerts on the page, each with its detail ("show more") text."""
    out = []
    for a in driver.find_elements(By.CSS_SELECTOR, ".pf-c-alert.pf-m-danger"):
        for more in a.find_elements(By.XPATH, ".//button[normalize-space()='show more']"):
            driver.execute_script("arguments[0].click()", more)
        text = " ".join(a.text.split()).replace("Danger alert: ", "").replace(" show less", ":")
        out.append(text)
    return out


def state_of(vm):
    return text_of("vm-%s-%s-state" % (vm, CONN))


def daemon_gone():
    """Why oxvirtd is no longer there, or None while it runs."""
    if not args.daemon_pid:
        return None
    try:
        with open("/proc/%d/stat" % args.daemon_pid) as f:
            if f.read().split(") ", 1)[1].startswith("Z"):
                raise OSError
        return None
    except OSError:
        last = ""
        if args.daemon_log:
            try:
                with open(args.daemon_log, errors="replace") as f:
                    lines = [l for l in f.read().splitlines() if l.strip()]
                last = ", its log ends: %r" % lines[-1][-160:] if lines else ""
            except OSError:
                pass
        return "oxvirtd (pid %d) is gone%s" % (args.daemon_pid, last)


def shot(n, name):
    try:
        driver.switch_to.default_content()
        driver.save_screenshot(os.path.join(ART, "%02d-%s.png" % (n, name)))
    except WebDriverException:
        pass


def check(name, requires=()):
    """Decorator: run the step now, print PASS/FAIL, take its screenshot.
    A step whose required steps failed is not run, and fails saying so."""
    def run(fn):
        n = len(results) + 1
        failed_before = [r for r, ok in results if r in requires and not ok]
        if failed_before:
            results.append((name, False))
            print("FAIL %s: not run, it needs %s, which failed" % (name, " and ".join(failed_before)),
                  flush=True)
            return fn
        if name == "oxvirtd-still-running":
            pass
        elif results and not results[0][1]:
            results.append((name, False))
            print("FAIL %s: not run, the page did not load" % name, flush=True)
            return fn
        gone = daemon_gone()
        if gone:
            results.append((name, False))
            print("FAIL %s: %s%s" % (name, "" if name == "oxvirtd-still-running" else "not run, ",
                                     gone), flush=True)
            return fn
        try:
            detail = fn()
            results.append((name, True))
            print("PASS %s%s" % (name, ": " + detail if detail else ""), flush=True)
        except Fail as e:
            results.append((name, False))
            print("FAIL %s: %s" % (name, e), flush=True)
        except Exception as e:  # a selenium or script error is a failure too
            results.append((name, False))
            msg = getattr(e, "msg", None) or str(e) or type(e).__name__
            print("FAIL %s: %s: %s" % (name, type(e).__name__, msg.splitlines()[0]), flush=True)
            with open(os.path.join(ART, "traceback-%s.txt" % name), "w") as f:
                traceback.print_exc(file=f)
        shot(n, name)
        return fn
    return run


def go_list():
    """Back to the list of VMs; after a crash of the page, load it anew."""
    try:
        frame()
        driver.execute_script("cockpit.location.go(['vms'])")
        wait(lambda: by_id("virtual-machines-listing") or by_id("create-new-vm"), "the VM list", 10)
        return
    except (Fail, WebDriverException):
        pass
    # The page is broken (an exception unmounted it): reload the Machines
    # iframe only, as reloading the whole page would end the browser's
    # session, and with it cockpit-ws --local-session.
    driver.switch_to.default_content()
    for f in driver.find_elements(By.TAG_NAME, "iframe"):
        if (f.get_attribute("name") or "").endswith("/machines"):
            driver.execute_script("arguments[0].contentWindow.location.reload()", f)
    time.sleep(2)
    wait(lambda: by_id("ignore-hw-virtualization-disabled-btn") or by_id("create-new-vm"),
         "the Machines page, loaded anew", 60)
    hw_ignore()
    frame()
    driver.execute_script("cockpit.location.go(['vms'])")
    wait(lambda: by_id("virtual-machines-listing") or by_id("create-new-vm"), "the VM list")


def hw_ignore():
    b = by_id("ignore-hw-virtualization-disabled-btn")
    if b and b.is_displayed():
        b.click()
        return True
    return False


# --- the checks

@check("page-loads")
def _():
    driver.get(args.url)
    driver.switch_to.default_content()
    time.sleep(1)
    if driver.find_elements(By.ID, "login-button"):
        raise Fail("cockpit-ws shows its login page (its local session was already "
                   "taken by another browser session?)")
    wait(lambda: by_id("ignore-hw-virtualization-disabled-btn") or by_id("create-new-vm")
         or by_id("virtual-machines-listing"), "the Machines page", 60)
    ignored = hw_ignore()
    wait(lambda: by_id("create-new-vm"), "the VM list after the notice", 30)
    return "clicked Ignore on 'Hardware virtualization is disabled'" if ignored else ""


@check("vms-listed")
def _():
    want = {RUNNING: "Running", OFF: "Shut off"}
    try:
        wait(lambda: all(state_of(v) == s for v, s in want.items()), "both VMs with their state", 30)
    except Fail as e:
        frame()
        got = {v: state_of(v) for v in want}
        shown = [l for l in body_text().splitlines() if "No VM" in l]
        # cockpit-machines logs why it dropped a domain ("GET_VM failed for
        # PATH, undefining: ...") on the browser console.
        browser_log()
        dropped = sorted({e["message"].split(" ", 2)[2].strip('"') for e in console_log
                          if "GET_VM failed" in e.get("message", "")})
        raise Fail("want %s, page shows %s%s%s" % (
            want, got, " and says %r" % shown[0] if shown else "",
            "; the browser console says: " + "; ".join(dropped) if dropped else "")) from e
    return "%s Running, %s Shut off" % (RUNNING, OFF)


@check("no-error-banner")
def _():
    time.sleep(2)  # late replies (storage pools, networks) raise the banner after the list
    frame()
    a = alerts()
    text = body_text()
    if a or "Failed to fetch" in text:
        raise Fail("; ".join(a) or "page says 'Failed to fetch'")


@check("run", requires=("vms-listed",))
def _():
    go_list()
    click_id("vm-%s-%s-run" % (OFF, CONN), "the Run button of " + OFF)
    try:
        wait(lambda: state_of(OFF) == "Running", OFF + " Running", 30)
    except Fail as e:
        raise Fail("%s; page: %s; alerts: %s; virsh domstate: %s" % (
            e, state_of(OFF), alerts(), domstate(OFF))) from e
    if domstate(OFF) != "running":
        raise Fail("page says Running, virsh domstate says " + domstate(OFF))


def console_log_says(vm, text, secs=30):
    path = os.path.join(args.testdir, vm + ".console.log")
    end = time.time() + secs
    while time.time() < end:
        try:
            with open(path, errors="replace") as f:
                if text in f.read():
                    return True
        except OSError:
            pass
        time.sleep(0.2)
    return False


@check("shut-down", requires=("run",))
def _():
    go_list()
    if domstate(OFF) != "running":
        raise Fail("%s is not running (virsh: %s)" % (OFF, domstate(OFF)))
    # The test guest arms its power-button handler once its checks are done.
    if not console_log_says(OFF, "waiting for power button"):
        raise Fail("the guest never said 'waiting for power button' in its console log")
    click_id("vm-%s-%s-shutdown-button" % (OFF, CONN), "the Shut down button of " + OFF)
    try:
        wait(lambda: state_of(OFF) == "Shut off", OFF + " Shut off", 30)
    except Fail as e:
        raise Fail("%s; page: %s; alerts: %s; virsh domstate: %s" % (
            e, state_of(OFF), alerts(), domstate(OFF))) from e


@check("details-page", requires=("vms-listed",))
def _():
    go_list()
    click_id("vm-%s-%s-name" % (RUNNING, CONN), "the name link of " + RUNNING)
    pre = "vm-" + RUNNING
    wait(lambda: by_id(pre + "-overview"), "the details page's overview", 30)
    problems = []
    cpu = wait(lambda: text_of(pre + "-cpu-model"), "the CPU type", 10).splitlines()[0]
    if "undefined" in cpu or not cpu.strip():
        problems.append("CPU type shows %r" % cpu)
    machine = text_of(pre + "-emulated-machine")
    if not machine or "undefined" in machine:
        problems.append("Emulated machine shows %r" % machine)
    try:
        disks = wait(lambda: text_of(pre + "-disks"), "the Disks card", 10)
        img = os.path.join(args.testdir, RUNNING + ".img")
        if img not in disks:
            problems.append("Disks card does not list %s: %r" % (img, " ".join(disks.split())[:200]))
    except Fail as e:
        problems.append(str(e))
    try:
        nics = wait(lambda: text_of(pre + "-networks"), "the Network interfaces card", 10)
        if "52:54:00:0c:0c:01" not in nics:
            problems.append("Network interfaces card does not show 52:54:00:0c:0c:01: %r"
                            % " ".join(nics.split())[:200])
    except Fail as e:
        problems.append(str(e))
    a = alerts()
    if a:
        problems.append("alerts: " + "; ".join(a))
    if problems:
        raise Fail("; ".join(problems))
    return "CPU type %r, machine %r" % (cpu, machine)


@check("serial-console", requires=("vms-listed",))
def _():
    pre = "vm-" + RUNNING
    if not by_id(pre + "-overview"):
        frame()
        driver.execute_script("cockpit.location.go(['vm'], {name: %s, connection: %s})"
                              % (json.dumps(RUNNING), json.dumps(CONN)))
    card = wait(lambda: by_id(pre + "-consoles"), "the Console card", 30)
    driver.execute_script("arguments[0].scrollIntoView({block: 'start'})", card)
    # The guest printed its checks long ago and waits for the power button:
    # the pty's backlog must show in the terminal.
    # The terminal wraps long lines (and the guest ends its lines with LF
    # alone), so compare without whitespace.
    def squeeze(t):
        return "".join(t.split())
    def rows():
        # xterm draws on a canvas; its accessibility tree has the text.
        return "\n".join(e.get_attribute("innerText") for e in driver.find_elements(
            By.CSS_SELECTOR, "#%s-consoles .xterm-accessibility-tree" % pre))
    try:
        wait(lambda: squeeze("waiting for power button") in
             squeeze(rows()),
             "the guest's output ('waiting for power button') in the serial console", 30)
    except Fail as e:
        frame()
        text = rows()
        raise Fail("%s; the terminal shows %d lines, the last: %r; alerts: %s" % (
            e, len(text.splitlines()), text.splitlines()[-1:] , alerts())) from e
    finally:
        try:
            frame()
            with open(os.path.join(ART, "serial-console.txt"), "w") as f:
                f.write(rows() + "\n")
        except (WebDriverException, Fail):
            pass


# Reads the noVNC canvas's own pixels (its backing store: noVNC scales the
# canvas with CSS only, so these are the framebuffer's pixels 1:1) and
# compares them with the test guest's pattern (compat-tests/guest/testos,
# "Display and input"): every pixel, and separately a 41x31 grid of sample
# points, counted for the report. Returns the canvas's size, its size on
# the page, the number of pixels that differ and the first few of them.
PATTERN_JS = """
const c = arguments[0];
const w = c.width, h = c.height;
const out = {w: w, h: h, cssW: c.clientWidth, cssH: c.clientHeight, bad: 0, first: [],
             grid: 0, gridBad: 0};
if (w !== 640 || h !== 480) return out;
const d = c.getContext('2d').getImageData(0, 0, w, h).data;
for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
        const r = Math.floor(x * 255 / (w - 1)), g = Math.floor(y * 255 / (h - 1));
        const b = ((x >> 5) ^ (y >> 5)) & 1 ? 255 : 0;
        const i = (y * w + x) * 4;
        const ok = d[i] === r && d[i + 1] === g && d[i + 2] === b;
        const onGrid = (x % 16 === 0 || x === w - 1) && (y % 16 === 0 || y === h - 1);
        if (onGrid) { out.grid++; if (!ok) out.gridBad++; }
        if (!ok) {
            out.bad++;
            if (out.first.length < 4)
                out.first.push([x, y, [d[i], d[i + 1], d[i + 2]], [r, g, b]]);
        }
    }
}
return out;
"""


def vnc_canvas(container):
    """The noVNC canvas in the console container, once it has a frame."""
    for c in driver.find_elements(By.CSS_SELECTOR, "#%s canvas" % container):
        if c.is_displayed() and int(c.get_attribute("width") or 0) > 0:
            return c
    return None


def pattern_on(container, what, secs=30):
    """Wait until the canvas in the container shows the guest's pattern."""
    last = {}

    def shows():
        c = vnc_canvas(container)
        if not c:
            return None
        last.clear()
        last.update(driver.execute_script(PATTERN_JS, c))
        return last if last["w"] == 640 and last["h"] == 480 and last["bad"] == 0 else None
    try:
        return wait(shows, "the guest's pattern in the %s" % what, secs)
    except Fail as e:
        if not last:
            raise
        raise Fail("%s: the canvas is %dx%d, %d pixels differ, first (x, y, got, want): %s" % (
            e, last["w"], last["h"], last["bad"], last["first"])) from e


def save_canvas(container, name):
    """The canvas's own pixels as a PNG, beside the screenshots."""
    import base64
    c = vnc_canvas(container)
    if c:
        url = driver.execute_script("return arguments[0].toDataURL('image/png')", c)
        with open(os.path.join(ART, name), "wb") as f:
            f.write(base64.b64decode(url.split(",", 1)[1]))


@check("add-disk-live", requires=("details-page",))
def _():
    """Disks card, Add disk, Custom path: an image plugged into the running
    guest (Cockpit's AttachDevice with the live flag), listed at once."""
    pre = "vm-" + RUNNING
    img = os.path.join(args.testdir, "added-live.img")
    with open(img, "wb") as f:
        f.truncate(4 << 20)
    frame()
    driver.execute_script("cockpit.location.go(['vm'], {name: %s, connection: %s})"
                          % (json.dumps(RUNNING), json.dumps(CONN)))
    wait(lambda: by_id(pre + "-disks"), "the Disks card", 30)
    dlg = pre + "-disks-adddisk"
    click_id(dlg, "the Add disk button")
    click_id(dlg + "-custompath", "Custom path in the dialog")
    box = wait(lambda: (driver.find_elements(
        By.CSS_SELECTOR, "input[placeholder=\"Path to file on host's file system\"]")
        or [None])[0], "the path field", 10)
    box.send_keys(img)
    # The field offers the matching files: take the image, as a user would.
    option = wait(lambda: next((o for o in driver.find_elements(
        By.CSS_SELECTOR, ".pf-c-select__menu-item") if o.text.strip() == img), None),
        "the image offered by the path field", 15)
    option.click()
    click_id(dlg + "-dialog-add", "the Add button")
    # The Source column wraps the path over several lines.
    def card():
        return "".join((text_of(pre + "-disks") or "").split())
    try:
        wait(lambda: not by_id(dlg + "-dialog-modal-window"), "the dialog to close", 30)
        wait(lambda: img in card(), "the new disk in the Disks card", 30)
    except Fail as e:
        errors = " ".join(" ".join(e.text for e in driver.find_elements(
            By.CSS_SELECTOR, ".pf-c-modal-box .pf-c-alert")).split())
        raise Fail("%s; dialog errors: %s; alerts: %s; the card: %s" % (
            e, errors, alerts(), card()[:300])) from e
    _, live = virsh("domblklist", RUNNING)
    if img not in live:
        raise Fail("virsh domblklist does not list %s: %r" % (img, live))
    target = next(l.split()[0] for l in live.splitlines() if img in l)
    return "%s plugged in as %s" % (img, target)


@check("vnc-console", requires=("vms-listed",))
def _():
    go_list()
    frame()
    driver.execute_script("cockpit.location.go(['vm'], {name: %s, connection: %s})"
                          % (json.dumps(VNC), json.dumps(CONN)))
    pre = "vm-" + VNC
    card = wait(lambda: by_id(pre + "-consoles"), "the Console card of " + VNC, 30)
    driver.execute_script("arguments[0].scrollIntoView({block: 'start'})", card)
    # A guest with VNC graphics gets the VNC console by default; noVNC
    # reaches the guest's VNC port through a stream channel of the bridge.
    try:
        got = pattern_on("vnc-display-container-minimized", "Console card's VNC console")
    except Fail as e:
        frame()
        raise Fail("%s; the card says %r; alerts: %s" % (
            e, " ".join(card.text.split())[:200], alerts())) from e
    return "Console card: noVNC canvas %dx%d (shown at %dx%d), all %d pixels are the " \
        "guest's pattern (%d of %d grid points)" % (
            got["w"], got["h"], got["cssW"], got["cssH"], got["w"] * got["h"],
            got["grid"] - got["gridBad"], got["grid"])


@check("vnc-console-expanded", requires=("vnc-console",))
def _():
    # "Expand": the console alone on the page, as large as it fits.
    pre = "vm-" + VNC
    frame()
    expand = wait(lambda: [b for b in driver.find_elements(
        By.CSS_SELECTOR, "#%s-consoles button" % pre) if b.text.strip() == "Expand"],
        "the Console card's Expand button", 10)[0]
    driver.execute_script("arguments[0].click()", expand)
    got = pattern_on("vnc-display-container-expanded", "expanded VNC console")
    driver.execute_script("arguments[0].scrollIntoView({block: 'end'})",
                          vnc_canvas("vnc-display-container-expanded"))
    time.sleep(0.5)
    save_canvas("vnc-display-container-expanded", "vnc-canvas.png")
    return "noVNC canvas %dx%d shown at %dx%d, every pixel the guest's pattern; " \
        "canvas saved as vnc-canvas.png" % (got["w"], got["h"], got["cssW"], got["cssH"])


@check("vnc-console-key", requires=("vnc-console-expanded",))
def _():
    # A key typed into the console reaches the guest's PS/2 keyboard: the
    # guest prints the make code (0x1e is 'a') on its serial port.
    frame()
    c = vnc_canvas("vnc-display-container-expanded")
    if not c:
        raise Fail("no VNC canvas on the expanded console")
    driver.execute_script("arguments[0].focus()", c)
    from selenium.webdriver.common.action_chains import ActionChains
    ActionChains(driver).move_to_element(c).click().send_keys("a").perform()
    if not console_log_says(VNC, "INFO key make 0x1e", 15):
        log = os.path.join(args.testdir, VNC + ".console.log")
        try:
            with open(log, errors="replace") as f:
                tail = [l for l in f.read().splitlines() if l.strip()][-3:]
        except OSError:
            tail = []
        raise Fail("the guest did not print 'INFO key make 0x1e' within 15 s; "
                   "its serial log ends: %s" % tail)
    return "'a' typed into the console: the guest printed 'INFO key make 0x1e'"


@check("force-off", requires=("vms-listed",))
def _():
    go_list()
    click_id("vm-%s-%s-action-kebab" % (RUNNING, CONN), "the action menu of " + RUNNING)
    click_id("vm-%s-%s-forceOff" % (RUNNING, CONN), "Force shut down in the menu", 10)
    try:
        wait(lambda: state_of(RUNNING) == "Shut off", RUNNING + " Shut off", 30)
    except Fail as e:
        raise Fail("%s; page: %s; alerts: %s; virsh domstate: %s" % (
            e, state_of(RUNNING), alerts(), domstate(RUNNING))) from e


def choose_os(dialog_text_hint="Debian"):
    """Type into the OS typeahead and take the first offered entry."""
    # The field is disabled while Cockpit runs osinfo-detect on the
    # installation source just chosen (which may start just after the field
    # was found enabled): wait for it, and type again, as a user would.
    for attempt in range(5):
        box = wait(lambda: [b for b in driver.find_elements(By.CSS_SELECTOR, "#os-select-group input")
                            if b.is_displayed() and b.is_enabled()] or None,
                   "the operating system field, enabled", 20)[0]
        try:
            box.click()
            box.send_keys(Keys.CONTROL, "a")
            box.send_keys(dialog_text_hint)
            break
        except (ElementNotInteractableException, StaleElementReferenceException):
            if attempt == 4:
                raise
            time.sleep(1)
    opt = wait(lambda: (driver.find_elements(
        By.CSS_SELECTOR, "#os-select-group .pf-c-select__menu button, "
        "#os-select-group .pf-c-select__menu-item") or [None])[0],
        "an operating system offered for %r" % dialog_text_hint, 10)
    name = opt.text
    opt.click()
    return name


def dialog_errors():
    d = by_id("create-vm-dialog")
    if not d:
        return ""
    parts = [e.text for e in d.find_elements(
        By.CSS_SELECTOR, ".pf-c-alert, .pf-m-error, .pf-c-form__helper-text.pf-m-error")]
    return " ".join(" ".join(parts).split())


def close_dialog():
    try:
        frame()
        for b in driver.find_elements(By.CSS_SELECTOR, "#create-vm-dialog button.pf-m-link"):
            if b.is_displayed() and b.text.strip() == "Cancel":
                driver.execute_script("arguments[0].click()", b)
                return
    except (WebDriverException, Fail):
        pass


def create_or_import(button, name, source_type, source, button_done):
    try:
        return _create_or_import(button, name, source_type, source, button_done)
    finally:
        shot(len(results) + 1, "dialog-" + name)
        close_dialog()


def _create_or_import(button, name, source_type, source, button_done):
    go_list()
    click_id(button)
    wait(lambda: by_id("create-vm-dialog"), "the dialog", 10)
    frame()
    name_box = by_id("vm-name")
    name_box.send_keys(name)
    if source_type:
        sel = Select(by_id("source-type"))
        sel.select_by_visible_text(source_type)
    if source is not None:
        src = wait(lambda: (driver.find_elements(
            By.CSS_SELECTOR, "#create-vm-dialog input[placeholder*='file system']") or [None])[0],
            "the source field", 10)
        src.click()
        src.send_keys(source)
        # The file autocomplete offers the path it found; take it.
        try:
            opt = wait(lambda: [o for o in driver.find_elements(
                By.CSS_SELECTOR, "#create-vm-dialog .pf-c-select__menu-item")
                if o.text.strip() == source], "the path offered by the autocomplete", 10)[0]
            opt.click()
        except Fail:
            src.send_keys(Keys.TAB)
    os_name = choose_os()
    storage = by_id("storage-pool-select")
    if storage and storage.is_displayed():
        Select(storage).select_by_visible_text("No storage")
    mem = by_id("memory-size")
    if mem:
        Select(by_id("memory-size-unit-select")).select_by_visible_text("MiB")
        mem.send_keys(Keys.CONTROL, "a")
        mem.send_keys("128")
    click_id(button_done, None, 10)
    # "Create and run" defines the VM through virt-install, starts it and
    # closes the dialog; the VM then shows in the list.
    try:
        def done():
            failed = [a for a in alerts() if "of VM %s failed" % name in a]
            if failed:
                raise Fail(failed[0])
            return not by_id("create-vm-dialog") and (by_id("vm-%s-overview" % name)
                                                      or state_of(name))
        wait(done, name + " in the list", 90)
        mark = len(console_log)
        time.sleep(2)
        threw = uncaught(mark)
        if threw:
            raise Fail("the page threw " + threw[-1])
    except Fail as e:
        frame()
        more = [a for a in alerts() if a not in str(e) and "Failed to fetch" not in a]
        if dialog_errors():
            more.append("the dialog says %r" % dialog_errors())
        rc, out = virsh("domstate", name)
        more.append("virsh domstate %s: %s" % (name, out.splitlines()[0] if out else rc))
        rc, xml = virsh("dumpxml", name)
        if rc == 0:
            with open(os.path.join(ART, name + ".xml"), "w") as f:
                f.write(xml + "\n")
        for st in stacks():
            print("# stack: " + st.replace("\n", "\n#   "))
        raise Fail("%s; %s" % (e, "; ".join(more))) from e
    # The page lists a guest it is creating before virt-install has defined
    # it: the domain comes within a while.
    try:
        wait(lambda: virsh("dominfo", name)[0] == 0, name + " defined", 60)
    except Fail:
        raise Fail("listed, but virsh dominfo %s: %s" % (name, virsh("dominfo", name)[1]))
    # The guest runs (its firmware finds nothing to boot on the empty
    # media, and keeps running), and the page says so.
    try:
        wait(lambda: domstate(name) == "running" and state_of(name) == "Running",
             name + " running", 60)
    except Fail as e:
        raise Fail("%s (virsh domstate: %s, page: %s)" % (e, domstate(name), state_of(name))) from e
    # virt-install, run by Cockpit, puts the guest on the default network.
    rc, out = virsh("domiflist", name)
    if rc != 0 or not any(l.split()[1:3] == ["network", "default"]
                          for l in out.splitlines() if len(l.split()) > 2):
        raise Fail("defined, but not on the default network: virsh domiflist %s: %r"
                   % (name, out))
    # Domain capabilities list VNC and the vga model: virt-install gives
    # the guest a graphical console, as it does on libvirt.
    rc, xml = virsh("dumpxml", name)
    with open(os.path.join(ART, name + ".xml"), "w") as f:
        f.write(xml + "\n")
    extra = [d for d, t in (("VNC graphics", "<graphics type='vnc'"),
                            ("a vga adapter", "<model type='vga'")) if t in xml]
    return "%s running (OS %s) on the default network%s" % (
        name, os_name, ", with " + " and ".join(extra) if extra else "")


@check("networks-listed", requires=("page-loads",))
def _():
    go_list()
    frame()
    driver.execute_script("cockpit.location.go(['networks'])")
    listing = wait(lambda: by_id("networks-listing"), "the Networks page", 15)
    rows = wait(lambda: [r for r in listing.find_elements(By.CSS_SELECTOR, "tbody tr")
                         if r.text.split() and r.text.split()[0] == "default"],
                "the default network in the list", 20)
    words = rows[0].text.split()
    if "active" not in [w.lower() for w in words]:
        raise Fail("default is listed but not active: %r" % rows[0].text)
    if "192.168.122.1" not in rows[0].text and "virbr0" not in rows[0].text:
        # The row shows the network's device and address.
        raise Fail("default's row shows neither virbr0 nor 192.168.122.1: %r" % rows[0].text)
    return " ".join(words)


def modal_button(text, what):
    """The button labelled `text` in the open dialog's footer."""
    return wait(lambda: [b for b in driver.find_elements(
        By.CSS_SELECTOR, ".pf-c-modal-box__footer button")
        if b.text.strip() == text and b.is_displayed() and b.is_enabled()], what, 15)[0]


def modal_errors():
    return " ".join(" ".join(e.text for e in driver.find_elements(
        By.CSS_SELECTOR, ".pf-c-modal-box .pf-c-alert")).split())


def snapshot_row_name():
    return text_of("vm-%s-snapshot-0-name" % SNAP)


@check("snapshot-create", requires=("vms-listed",))
def _():
    go_list()
    click_id("vm-%s-%s-name" % (SNAP, CONN), "the name link of " + SNAP)
    pre = "vm-" + SNAP
    click_id(pre + "-add-snapshot-button", "the Create snapshot button")
    name = wait(lambda: by_id("snapshot-create-dialog-name"), "the snapshot dialog", 10)
    name.send_keys(Keys.CONTROL, "a")
    name.send_keys("before-upgrade")
    desc = by_id("snapshot-create-dialog-description")
    if desc:
        desc.send_keys("taken in Cockpit")
    modal_button("Create", "the dialog's Create button").click()
    try:
        wait(lambda: snapshot_row_name() == "before-upgrade",
             "the snapshot in the Snapshots card", 60)
    except Fail as e:
        raise Fail("%s; the dialog says %r; alerts: %s" % (e, modal_errors(), alerts())) from e
    rc, info = virsh("snapshot-info", SNAP, "before-upgrade")
    if rc != 0 or "Location:       internal" not in info or "State:          running" not in info:
        raise Fail("virsh snapshot-info says: %r" % info)
    if domstate(SNAP) != "running":
        raise Fail("the guest is %s after the snapshot" % domstate(SNAP))
    return "internal snapshot with memory, listed as %s" % " ".join(
        (text_of("vm-%s-snapshot-0-type" % SNAP) or "").split())


@check("snapshot-revert", requires=("snapshot-create",))
def _():
    pre = "vm-" + SNAP
    click_id(pre + "-snapshot-0-revert", "the Revert button")
    modal_button("Revert", "the dialog's Revert button").click()
    wait(lambda: not driver.find_elements(By.CSS_SELECTOR, ".pf-c-modal-box"),
         "the revert dialog to close", 60)
    rc, out = virsh("domstate", SNAP, "--reason")
    if "running (from snapshot)" not in out:
        raise Fail("virsh domstate --reason: %r; alerts: %s" % (out, alerts()))
    rc, cur = virsh("snapshot-current", SNAP, "--name")
    if cur.strip() != "before-upgrade":
        raise Fail("current snapshot is %r" % cur)


@check("snapshot-delete", requires=("snapshot-create",))
def _():
    click_id("delete-vm-%s-snapshot-0" % SNAP, "the snapshot's Delete button")
    modal_button("Delete", "the confirmation's Delete button").click()
    wait(lambda: not snapshot_row_name(), "the snapshot to leave the card", 60)
    rc, out = virsh("snapshot-list", SNAP, "--name")
    if rc != 0 or out.strip():
        raise Fail("virsh snapshot-list --name: %r" % out)
    if domstate(SNAP) != "running":
        raise Fail("the guest is %s after the delete" % domstate(SNAP))


@check("create-vm")
def _():
    iso = os.path.join(args.testdir, "install.iso")
    open(iso, "wb").close()
    return create_or_import("create-new-vm", CREATED,
                            "Local install media (ISO image or distro install tree)",
                            iso, "create-and-run")


@check("import-vm")
def _():
    disk = os.path.join(args.testdir, "import.img")
    with open(disk, "wb") as f:
        f.truncate(16 << 20)
    return create_or_import("import-existing-vm", IMPORTED, None, disk, "create-and-run")


@check("oxvirtd-still-running")
def _():
    # (A check whose daemon is gone is not run and fails saying so.)
    return "pid %d" % args.daemon_pid if args.daemon_pid else ""


# --- the end
try:
    browser_log()
    with open(os.path.join(ART, "browser-console.log"), "w") as f:
        for entry in console_log:
            f.write("%s %s %s\n" % (entry.get("timestamp"), entry.get("level"),
                                    entry.get("message")))
except WebDriverException:
    pass
try:
    driver.quit()
except WebDriverException:
    pass
if args.dbus_log:
    here = os.path.dirname(os.path.abspath(__file__))
    summary = os.path.join(here, "dbus_calls.py")
    with open(os.path.join(ART, "dbus-calls.txt"), "w") as f:
        subprocess.run([sys.executable, summary, args.dbus_log], stdout=f, stderr=subprocess.STDOUT)
    failed_calls = subprocess.run([sys.executable, summary, args.dbus_log, "--errors", "--unique"],
                                  capture_output=True, text=True).stdout.splitlines()
    if failed_calls:
        print("# D-Bus calls to org.libvirt that failed (all calls in order: %s):"
              % os.path.join(ART, "dbus-calls.txt"))
        for line in failed_calls:
            print("#  " + line)
passed = sum(1 for _, ok in results if ok)
failed = len(results) - passed
print("%d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
