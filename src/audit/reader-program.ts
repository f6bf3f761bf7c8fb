// The conntrack event reader: a small Python 3 program (standard library
// only: Debian and Amazon Linux ship python3 in their base images), because
// Node cannot open a netlink socket and `conntrack -E` (conntrack-tools 1.4.7)
// applies its -b buffer size to its query socket, not to the event socket it
// reads, and filters marks in user space.
//
// It subscribes to ctnetlink's event groups (DESTROY, and NEW when asked),
// drops every event whose connmark lacks cachenat's bit in the kernel with a
// classic BPF socket filter (the host's other traffic never reaches it),
// raises its receive buffer with SO_RCVBUFFORCE, and prints one line per
// event (the line protocol src/core/audit/reader-lines.ts parses):
//
//   R 1 buffer=<bytes granted> filter=kernel|user events=<groups>     once, when subscribed
//   D|N <id> <l4proto> <tcp state> <orig src> <orig dst> <orig sport> <orig dport>
//       <reply src> <reply dst> <reply sport> <reply dport> <orig packets> <orig bytes>
//       <reply packets> <reply bytes> <mark> <start ns> <stop ns> <portid> <received ns>
//   L <events dropped> <drops so far> <received ns>                  after an overrun (ENOBUFS)
//
// A missing value is "-". The kernel counts each event it could not queue for
// this socket (sk_drops, the Drops column of /proc/net/netlink): the reader
// reads it after every ENOBUFS (and once more when its queue is empty again:
// while the socket stays marked congested, the kernel drops events without a
// new ENOBUFS), so the loss is a number, not a guess. Output
// is flushed once per batch of queued events. It exits when its stdin closes
// (the daemon is gone) and on any error, with the message on stderr.
//
// The program is sent on file descriptor 3 (READER_BOOTSTRAP reads it), so
// the command line stays short and stdin stays free to watch the parent.
// With --decode it reads netlink messages in hex from stdin instead of a
// socket (the tests feed it messages built from random events).

export const READER_PROGRAM = String.raw`
import ctypes, errno, os, select, socket, struct, sys, time

NETLINK_NETFILTER = 12
SO_ATTACH_FILTER = 26
SO_RCVBUFFORCE = 33
GROUPS = {'new': 1, 'destroy': 4}
CT_NEW, CT_DELETE = 0x100, 0x102
unpack = struct.unpack_from

def option(name, default):
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else default

MARK = int(option('--mark', '0'), 0)
BUFFER = int(option('--buffer', '0'))
EVENTS = option('--events', 'destroy')
GROUP_MASK = 0
for group in EVENTS.split(','):
    GROUP_MASK |= GROUPS[group]

def attributes(data, start, end):
    found = {}
    while start + 4 <= end:
        length, kind = unpack('=HH', data, start)
        if length < 4:
            break
        found[kind & 0x3fff] = (start + 4, start + length)
        start += (length + 3) & ~3
    return found

def nested(data, span):
    return attributes(data, span[0], span[1])

def flow_tuple(data, span):
    parts = nested(data, span)
    ip, proto = parts.get(1), parts.get(2)
    if ip is None or proto is None:
        return None
    ip, proto = nested(data, ip), nested(data, proto)
    if 1 not in ip or 2 not in ip or 1 not in proto:
        return None
    sport = unpack('>H', data, proto[2][0])[0] if 2 in proto else '-'
    dport = unpack('>H', data, proto[3][0])[0] if 3 in proto else '-'
    return (data[proto[1][0]], socket.inet_ntoa(data[ip[1][0]:ip[1][0] + 4]), socket.inet_ntoa(data[ip[2][0]:ip[2][0] + 4]), sport, dport)

def counters(data, span):
    if span is None:
        return ('-', '-')
    c = nested(data, span)
    return (unpack('>Q', data, c[1][0])[0] if 1 in c else '-', unpack('>Q', data, c[2][0])[0] if 2 in c else '-')

def line_of(data, received):
    length, kind, flags, seq, portid = unpack('=IHHII', data, 0)
    if kind not in (CT_NEW, CT_DELETE) or data[16] != socket.AF_INET:
        return None
    top = attributes(data, 20, min(length, len(data)))
    if 1 not in top or 2 not in top:
        return None
    mark = unpack('>I', data, top[8][0])[0] if 8 in top else 0
    if mark & MARK != MARK:
        return None
    orig, reply = flow_tuple(data, top[1]), flow_tuple(data, top[2])
    if orig is None or reply is None:
        return None
    state = '-'
    if 4 in top:
        tcp = nested(data, top[4]).get(1)
        if tcp is not None:
            found = nested(data, tcp).get(1)
            if found is not None:
                state = data[found[0]]
    start = stop = '-'
    if 20 in top:
        stamps = nested(data, top[20])
        if 1 in stamps:
            start = unpack('>Q', data, stamps[1][0])[0]
        if 2 in stamps:
            stop = unpack('>Q', data, stamps[2][0])[0]
    ct_id = unpack('>I', data, top[12][0])[0] if 12 in top else '-'
    head = 'D' if kind == CT_DELETE else 'N'
    fields = (head, ct_id, orig[0], state, orig[1], orig[2], orig[3], orig[4], reply[1], reply[2], reply[3], reply[4]) + counters(data, top.get(9)) + counters(data, top.get(10)) + (mark, start, stop, portid, received)
    return ' '.join(map(str, fields))

def mark_filter():
    # Accept a message only when its CTA_MARK attribute carries every bit of MARK.
    nlattr = (-0x1000 + 12) & 0xffffffff  # SKF_AD_OFF + SKF_AD_NLATTR: A = offset of attribute X from offset A, or 0
    program = [
        (0x00, 0, 0, 20),     # A = 20, the first attribute (after nlmsghdr and nfgenmsg)
        (0x01, 0, 0, 8),      # X = CTA_MARK
        (0x20, 0, 0, nlattr), # A = offset of the mark attribute
        (0x15, 5, 0, 0),      # none: drop
        (0x07, 0, 0, 0),      # X = A
        (0x40, 0, 0, 4),      # A = the mark, the big-endian word after the attribute header
        (0x54, 0, 0, MARK),   # A &= MARK
        (0x15, 0, 1, MARK),   # A == MARK: accept, else drop
        (0x06, 0, 0, 0xffffffff),
        (0x06, 0, 0, 0),
    ]
    class Insn(ctypes.Structure):
        _fields_ = [('code', ctypes.c_ushort), ('jt', ctypes.c_ubyte), ('jf', ctypes.c_ubyte), ('k', ctypes.c_uint32)]
    class Prog(ctypes.Structure):
        _fields_ = [('len', ctypes.c_ushort), ('filter', ctypes.POINTER(Insn))]
    insns = (Insn * len(program))(*[Insn(*i) for i in program])
    return insns, Prog(len(program), insns)

def drops_of(inode):
    with open('/proc/net/netlink') as table:
        for row in table:
            cols = row.split()
            if len(cols) >= 10 and cols[9] == str(inode):
                return int(cols[8])
    return None

def main():
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    if BUFFER > 0:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, BUFFER)
    where = 'user'
    if MARK:
        try:
            keep = mark_filter()
            sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, bytes(keep[1]))
            where = 'kernel'
        except OSError:
            pass
    sock.bind((0, GROUP_MASK))
    sock.setblocking(False)
    inode = os.fstat(sock.fileno()).st_ino
    out = sys.stdout.buffer
    out.write(('R 1 buffer=%d filter=%s events=%s\n' % (sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF), where, EVENTS)).encode())
    out.flush()
    poll = select.poll()
    poll.register(sock.fileno(), select.POLLIN)
    stdin = sys.stdin.fileno()
    poll.register(stdin, select.POLLIN | select.POLLHUP)
    drops = 0
    # While the kernel still marks the socket congested after an overrun, it drops events without
    # raising ENOBUFS again: once the queue is empty (the mark is cleared), the count is read once more.
    dirty = False
    buf = bytearray(65536)
    while True:
        for fd, _ in poll.poll():
            if fd == stdin:
                if not os.read(stdin, 4096):
                    return 0
                continue
            lines = []
            while True:
                try:
                    n = sock.recv_into(buf)
                except BlockingIOError:
                    if dirty:
                        dirty = False
                        total = drops_of(inode)
                        if total is not None and total > drops:
                            lines.append('L %d %d %d' % (total - drops, total, time.time_ns()))
                            drops = total
                    break
                except OSError as err:
                    if err.errno != errno.ENOBUFS:
                        raise
                    total = drops_of(inode)
                    lines.append('L %s %s %d' % ('-' if total is None else total - drops, '-' if total is None else total, time.time_ns()))
                    drops = drops if total is None else total
                    dirty = True
                    continue
                received = time.time_ns()
                data = bytes(buf[:n])
                offset = 0
                while offset + 20 <= n:
                    length = unpack('=I', data, offset)[0]
                    if length < 20:
                        break
                    line = line_of(data[offset:offset + length], received)
                    if line is not None:
                        lines.append(line)
                    offset += (length + 3) & ~3
            if lines:
                out.write(('\n'.join(lines) + '\n').encode())
                out.flush()

def decode():
    # Tests: netlink messages in hex on stdin, one per line; the line each gives (or "-") on stdout.
    for text in sys.stdin:
        data = bytes.fromhex(text.strip())
        line = line_of(data, 0) if len(data) >= 20 else None
        sys.stdout.write((line or '-') + '\n')
    return 0

try:
    sys.exit(decode() if '--decode' in sys.argv else main())
except BrokenPipeError:
    sys.exit(0)
except Exception as err:
    sys.stderr.write('%s: %s\n' % (type(err).__name__, err))
    sys.exit(1)
`;

/** Reads the program from file descriptor 3 and runs it; the arguments follow on the command line. */
export const READER_BOOTSTRAP = "import sys;exec(compile(open(3,'rb').read(),'cachenat-flow-reader','exec'))";
