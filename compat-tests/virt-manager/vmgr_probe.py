#!/usr/bin/python3
"""Run the real virt-manager (Debian's /usr/share/virt-manager) unchanged, with
two watchers added for the test:

* every libvirt error the client library reports -- also the ones virt-manager
  catches and drops -- is logged to the --debug log as one line
      OXPROBE libvirt-error call=virDomain.XMLDesc code=84 domain=10
          caller=virtManager/object/domain.py:123 msg=...
  (the python-libvirt function that failed and virt-manager's line that called it);
* once a second (and on SIGUSR1) the text of every top-level window is written to
  DUMP (atomically): window title, type, X window id, and what is on screen in it
  (labels, entries, tree/list rows, notebook pages, the serial console's terminal,
  message dialogs with their kind, the graphical console's gtk-vnc widget with its
  place and the guest desktop's size), and of open menus (POPUP); labels and rows
  carry their rectangle in root coordinates (x,y,w,h), for xdotool to click.

usage: vmgr_probe.py DUMP virt-manager-args...
"""
import os
import re
import signal
import sys
import traceback

DUMP = sys.argv[1]
sys.argv = ["virt-manager"] + sys.argv[2:]
sys.path.insert(0, "/usr/share/virt-manager")

import libvirt  # noqa: E402
import virtinst  # noqa: E402  (registers virt-manager's own silent error handler)
from virtinst import log  # noqa: E402


def _libvirt_error(_ctx, err):
    """libvirt's error callback: it runs inside the failing call, so the
    stack shows which python-libvirt method failed (the innermost frame in
    libvirt.py, with its object's class) and who in virt-manager called it."""
    call = caller = "?"
    f = sys._getframe(1)
    while f is not None:
        fn = f.f_code.co_filename
        if call == "?" and fn.endswith("/libvirt.py"):
            obj = f.f_locals.get("self")
            call = ((type(obj).__name__ + ".") if obj is not None else "libvirt.") + f.f_code.co_name
        elif call != "?" and ("/virtManager/" in fn or "/virtinst/" in fn):
            caller = "%s:%d(%s)" % (re.sub(r"^.*/(virtManager|virtinst)/", r"\1/", fn),
                                    f.f_lineno, f.f_code.co_name)
            break
        f = f.f_back
    try:
        code, domain, msg = err[0], err[1], err[2]
    except Exception:
        code, domain, msg = "?", "?", str(err)
    log.debug("OXPROBE libvirt-error call=%s code=%s domain=%s caller=%s msg=%s",
              call, code, domain, caller, (msg or "").replace("\n", " "))


libvirt.registerErrorHandler(_libvirt_error, None)

# libvirt-glib's init (virt-manager calls it before connecting) installs its
# own error function: install ours again right after it.
import gi  # noqa: E402
gi.require_version("LibvirtGLib", "1.0")
from gi.repository import LibvirtGLib  # noqa: E402
_glib_init = LibvirtGLib.init


def _init_then_ours(*args):
    ret = _glib_init(*args)
    libvirt.registerErrorHandler(_libvirt_error, None)
    return ret


LibvirtGLib.init = _init_then_ours


def _dump_windows():
    from gi.repository import Gtk

    def esc(s):
        return (s or "").replace("\n", "\\n")

    def strip_markup(s):
        return re.sub(r"<[^>]*>", "", s or "")

    out = []

    def row_rect(tree, top, model, it):
        """The row's rectangle in root coordinates, or None when not shown."""
        try:
            path = model.get_path(it)
            r = tree.get_background_area(path, tree.get_column(0))
            if r.height <= 0:
                return None
            wx, wy = tree.convert_bin_window_to_widget_coords(r.x, r.y)
            xy = tree.translate_coordinates(top, wx, wy)
            _, ox, oy = top.get_window().get_origin()
            return "%d,%d,%d,%d" % (ox + xy[-2], oy + xy[-1], tree.get_allocated_width(), r.height)
        except Exception:
            return None

    def model_rows(model, it, depth, lines, tree=None, top=None):
        while it is not None:
            vals = []
            for c in range(model.get_n_columns()):
                try:
                    v = model.get_value(it, c)
                except Exception:
                    continue
                if isinstance(v, str) and v.strip():
                    vals.append(strip_markup(v).replace("\n", " / "))
            rect = row_rect(tree, top, model, it) if tree is not None else None
            lines.append("  " * depth + "ROW%s %s" % ("@" + rect if rect else "", " | ".join(vals)))
            if model.iter_has_child(it):
                model_rows(model, model.iter_children(it), depth + 1, lines, tree, top)
            it = model.iter_next(it)

    def walk(w, top, lines):
        if not w.get_mapped():
            return
        kind = type(w).__name__
        if isinstance(w, Gtk.Label):
            t = w.get_text()
            if t.strip():
                xy = w.translate_coordinates(top, 0, 0)
                x, y = (xy[-2], xy[-1]) if xy else (0, 0)
                ox, oy = 0, 0
                gw = top.get_window()
                if gw is not None:
                    _, ox, oy = gw.get_origin()
                a = w.get_allocation()
                lines.append("LABEL %d,%d,%d,%d %s" % (ox + x, oy + y, a.width, a.height, esc(t)))
        elif isinstance(w, Gtk.Entry):
            lines.append("ENTRY %s" % esc(w.get_text()))
        elif isinstance(w, Gtk.TreeView):
            model = w.get_model()
            lines.append("TREE %s" % w.get_name())
            if model is not None:
                model_rows(model, model.get_iter_first(), 1, lines, w, top)
        elif isinstance(w, Gtk.TextView):
            buf = w.get_buffer()
            lines.append("TEXT %s" % esc(buf.get_text(buf.get_start_iter(), buf.get_end_iter(), False))[:2000])
        elif isinstance(w, Gtk.Notebook):
            n = w.get_current_page()
            page = w.get_nth_page(n) if n >= 0 else None
            tab = w.get_tab_label_text(page) if page is not None else None
            lines.append("NOTEBOOK %s page=%d tab=%s" % (w.get_name(), n, esc(tab)))
        elif kind == "Display" and hasattr(w, "get_width"):  # gtk-vnc's widget
            # Where the guest's screen is drawn (root coordinates) and the
            # size of the guest's desktop as the VNC server announced it.
            xy = w.translate_coordinates(top, 0, 0)
            x, y = (xy[-2], xy[-1]) if xy else (0, 0)
            ox, oy = 0, 0
            gw = top.get_window()
            if gw is not None:
                _, ox, oy = gw.get_origin()
            a = w.get_allocation()
            try:
                is_open, dw, dh = int(w.is_open()), w.get_width(), w.get_height()
                scaling = int(w.get_scaling())
            except Exception:
                is_open, dw, dh, scaling = 0, -1, -1, -1
            lines.append("VNC %d,%d,%d,%d open=%d desktop=%dx%d scaling=%d" % (
                ox + x, oy + y, a.width, a.height, is_open, dw, dh, scaling))
        elif kind == "Terminal":  # the VTE serial console
            try:
                txt = w.get_text_range(0, 0, w.get_row_count() + 200, 200, None)
                txt = txt[0] if isinstance(txt, tuple) else txt
            except Exception as e:
                txt = "(unreadable: %s)" % e
            lines.append("TERMINAL %s" % esc(txt)[-3000:])
        kids = []
        if isinstance(w, Gtk.Container):
            w.forall(kids.append)
        for k in kids:
            walk(k, top, lines)

    for top in Gtk.Window.list_toplevels():
        if top.get_window_type() != Gtk.WindowType.TOPLEVEL:
            # menus (and tooltips) that are open: their items, to click them
            if top.get_mapped():
                gw = top.get_window()
                out.append("POPUP xid=%d type=%s" % (gw.get_xid() if gw else 0, type(top).__name__))
                walk(top, top, out)
            continue
        gw = top.get_window()
        xid = 0
        if gw is not None:
            try:
                xid = gw.get_xid()
            except Exception:
                xid = 0
        head = "WINDOW xid=%d mapped=%d type=%s name=%s title=%s" % (
            xid, int(top.get_mapped()), type(top).__name__, top.get_name(), esc(top.get_title()))
        if isinstance(top, Gtk.MessageDialog):
            mt = top.get_property("message-type")
            head += " dialog=%s text=%s secondary=%s" % (
                mt.value_nick, esc(top.get_property("text")),
                esc(top.get_property("secondary-text")))
        out.append(head)
        if top.get_mapped():
            walk(top, top, out)
    tmp = DUMP + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(out) + "\n")
    os.replace(tmp, DUMP)


def _tick():
    try:
        _dump_windows()
    except Exception:
        log.debug("OXPROBE dump failed:\n%s", traceback.format_exc())
    return True


def _install_timer():
    from gi.repository import GLib
    GLib.timeout_add(1000, _tick)
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGUSR1, lambda *_: _tick() and True)


# VMGR_ALL_STATS=1: what a user gets by ticking every "Poll ... statistics"
# box in Preferences (all off but CPU by default): virt-manager then also
# asks for memory, disk and network statistics. The settings are in memory
# (GSETTINGS_BACKEND=memory), so they are set here, in the process.
if os.environ.get("VMGR_ALL_STATS") == "1":
    from gi.repository import Gio
    _stats = Gio.Settings.new("org.virt-manager.virt-manager.stats")
    for _key in ("enable-cpu-poll", "enable-memory-poll", "enable-disk-poll", "enable-net-poll"):
        _stats.set_boolean(_key, True)
    _stats.set_int("update-interval", 1)

# VMGR_CONSOLE_SCALING=N: Preferences > Console > Graphical console
# scaling (0 never, 1 only in full screen, the default, 2 always).
if os.environ.get("VMGR_CONSOLE_SCALING"):
    from gi.repository import Gio
    Gio.Settings.new("org.virt-manager.virt-manager.console").set_int(
        "scaling", int(os.environ["VMGR_CONSOLE_SCALING"]))

# VMGR_VNC_DEBUG=1: gtk-vnc's debug messages (the RFB handshake, encodings,
# why a connection ended) in the log.
if os.environ.get("VMGR_VNC_DEBUG") == "1":
    gi.require_version("GVnc", "1.0")
    from gi.repository import GVnc
    GVnc.util_set_debug(True)

# VMGR_NO_GRAPHICS_FD=1: virt-manager's support check for
# virDomainOpenGraphicsFD says no, as with libvirt before 1.2.8: gtk-vnc
# then connects to the address and port of the domain's live XML itself.
if os.environ.get("VMGR_NO_GRAPHICS_FD") == "1":
    from virtinst import support as _support
    _support.SupportCache.domain_open_graphics = lambda self, data=None: False

# virt-manager imports Gtk itself (after parsing its options); the timer only
# needs GLib's default main context, which its Gtk.Application runs.
_install_timer()

from virtManager import virtmanager  # noqa: E402

virtmanager.runcli()
