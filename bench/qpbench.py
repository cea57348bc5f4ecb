"""What the benchmark scripts share: the machine's CPU model for their reports and a private
session bus (dbus-daemon --session --fork). The scripts put this folder on sys.path."""
import os
import signal
import subprocess

# The daemon's D-Bus names and the policy's namespace.
BUS_NAME = 'org.qcow2policyd.Policy1'
ROOT_PATH = '/org/qcow2policyd/Policy1'
MANAGER_PATH = ROOT_PATH + '/Manager'
MANAGER_IFACE = 'org.qcow2policyd.Policy1.Manager'
DOMAIN_IFACE = 'org.qcow2policyd.Policy1.Domain'
NS_URI = 'http://qcow2policyd.org/schemas/l2cache/1.0'


def cpu_model(default='?'):
    """The first "model name" of /proc/cpuinfo, or @default."""
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return default


class SessionBus:
    """A private session dbus-daemon: .address, .pid and a GDBus connection .conn to it."""

    def __init__(self):
        from gi.repository import Gio
        out = subprocess.run(['dbus-daemon', '--session', '--fork', '--print-address=1',
                              '--print-pid=1', '--nosyslog'],
                             check=True, capture_output=True, text=True).stdout.split()
        self.address, self.pid = out[0], int(out[1])
        self.conn = Gio.DBusConnection.new_for_address_sync(
            self.address, Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT |
            Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION, None, None)

    def stop(self):
        self.conn.close_sync(None)
        try:
            os.kill(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
