"""Drives fail2ban's own Python code where its command-line tools cannot (used by
tests/fail2ban.rs; run with the interpreter of /usr/bin/fail2ban-regex).

journal FILTER  Reads turnd's stderr lines on stdin and passes each through fail2ban's systemd
                backend as a journal entry of turnd.service (FilterSystemd.formatJournalEntry,
                then Filter.processLine with the journal's time, no datepattern): prints
                `matched IP` or `missed` per line. No journal is opened, so python3-systemd is
                only stubbed when it is missing.
ban CONFDIR IP  Reads the fail2ban configuration in CONFDIR as fail2ban-client does and bans IP
                with each action of the turnd jail as the server does (the action's
                actionstart, run on the first ban, then actionban); exits 1 if one fails.
"""
import datetime
import sys
import time
import types

sys.path.insert(0, "/usr/lib/python3/dist-packages")
try:
    import systemd.journal  # noqa: F401
except ImportError:
    stub = types.ModuleType("systemd")
    stub.journal = types.ModuleType("systemd.journal")
    stub.journal.__version__ = "252"
    sys.modules["systemd"] = stub
    sys.modules["systemd.journal"] = stub.journal

from fail2ban.client.configurator import Configurator
from fail2ban.client.filterreader import FilterReader
from fail2ban.server.action import CommandAction
from fail2ban.server.actions import Actions
from fail2ban.server.ipdns import IPAddr
from fail2ban.server.ticket import BanTicket
from fail2ban.server.filter import Filter
from fail2ban.server.filtersystemd import FilterSystemd


class JournalFilter(FilterSystemd):
    """The systemd backend's line building and matching, without a journal reader."""

    def __init__(self):
        Filter.__init__(self, None)
        self.checkFindTime = False

    def getLogEncoding(self):
        return "UTF-8"

    def getJrnEntTime(self, entry):
        t = entry["__REALTIME_TIMESTAMP"]
        return (t.isoformat(), t.timestamp())


def journal(path):
    reader = FilterReader(path, "turnd", {}, basedir=None)
    if not reader.readexplicit():
        sys.exit("cannot read " + path)
    reader.applyAutoOptions("systemd")
    reader.getOptions(None)
    flt = JournalFilter()
    for cmd in reader.convert():
        if cmd[0] == "set" and cmd[2] == "addfailregex":
            flt.addFailRegex(cmd[3])
        elif cmd[0] == "set" and cmd[2] == "addignoreregex":
            flt.addIgnoreRegex(cmd[3])
        elif cmd[0] == "set" and cmd[2] == "datepattern":
            flt.setDatePattern(cmd[3])
    for n, message in enumerate(sys.stdin.read().splitlines()):
        entry = {"_HOSTNAME": "turnd-relay-0", "SYSLOG_IDENTIFIER": "turnd", "_PID": 4242,
                 "_SYSTEMD_UNIT": "turnd.service", "MESSAGE": message,
                 "__REALTIME_TIMESTAMP": datetime.datetime.now()}
        line, date = flt.formatJournalEntry(entry)
        if n == 0:
            print("journal line:", line[2])
        found = flt.processLine(line, date)
        print("matched " + str(found[0][1]) if found else "missed")


def ban(confdir, ip):
    conf = Configurator()
    conf.setBaseDir(confdir)
    conf.readAll()
    if not conf.getOptions("turnd", ignoreWrong=False):
        sys.exit("cannot read the turnd jail in " + confdir)
    conf.convertToProtocol(allow_no_files=True)
    ticket = Actions.ActionInfo(BanTicket(IPAddr(ip), time.time()))
    banned = 0
    for cmd in conf.getConfigStream():
        if cmd[:3] != ["multi-set", "turnd", "action"]:
            continue
        action = CommandAction(None, cmd[3])
        for key, value in cmd[4]:
            setattr(action, key, value)
        print("action", cmd[3])
        # What ban() does on the first ban of a family, but with its result checked.
        if not action._start(ticket["family"], forceStart=True):
            sys.exit("actionstart of %s failed" % cmd[3])
        action.ban(ticket)  # raises when actionban fails
        banned += 1
    if banned == 0:
        sys.exit("the turnd jail has no action")


if __name__ == "__main__":
    {"journal": journal, "ban": ban}[sys.argv[1]](*sys.argv[2:])
