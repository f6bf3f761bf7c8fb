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
// new ENOBUFS), so the loss is a number, not a guess. Lines go out in batches,
// at most 200 ms after the first of them: the socket is drained at once, but
// the daemon wakes a few times a second, not once per flow. It exits when its stdin closes
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
FLUSH_S = 0.2
FLUSH_LINES = 2000
GATHER_S = 0.05
GATHER_MIN_BUFFER = 8 << 20
unpack = struct.unpack_from
inet_ntoa = socket.inet_ntoa
HEADER = struct.Struct('=IHHIIB')
ATTR = struct.Struct('=HH')
BE32 = struct.Struct('>I')
TUPLE = struct.Struct('=HHHH4sHH4sHHHHBxxxHHHxxHHHxx')
PAIR_HEADERS = struct.Struct('=HH8xHH')
PAIR_VALUES = struct.Struct('>Q4xQ')
STATE = struct.Struct('=HHHHB')
LINE = ' '.join(['%s'] * 21)

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
    # Fast path: the two 64-bit attributes in the kernel's order, no padding attribute between them.
    p, end = span
    if end - p >= 24:
        l1, t1, l2, t2 = PAIR_HEADERS.unpack_from(data, p)
        if l1 == 12 and t1 == 1 and l2 == 12 and t2 == 2:
            return PAIR_VALUES.unpack_from(data, p + 4)
    c = nested(data, span)
    return (unpack('>Q', data, c[1][0])[0] if 1 in c else '-', unpack('>Q', data, c[2][0])[0] if 2 in c else '-')

def fast_tuple(data, span):
    # The layout the kernel writes for TCP and UDP: CTA_TUPLE_IP {src, dst}, CTA_TUPLE_PROTO {num, sport, dport}.
    if span[1] - span[0] < 48:
        return None
    il, it, sl, st, src, dl, dt, dst, pl, pt, nl, nt, num, spl, spt, sp, dpl, dpt, dp = TUPLE.unpack_from(data, span[0])
    if il != 20 or it & 0x3fff != 1 or sl != 8 or st != 1 or dl != 8 or dt != 2 or pt & 0x3fff != 2 or nl != 5 or nt != 1 or spl != 6 or spt != 2 or dpl != 6 or dpt != 3:
        return None
    # The ports are big-endian; the struct read them in native (little-endian) order.
    return (num, inet_ntoa(src), inet_ntoa(dst), ((sp & 0xff) << 8) | (sp >> 8), ((dp & 0xff) << 8) | (dp >> 8))

def line_of(data, received):
    length, kind, flags, seq, portid, family = HEADER.unpack_from(data, 0)
    if (kind != CT_DELETE and kind != CT_NEW) or family != 2:
        return None
    end = min(length, len(data))
    orig = reply = proto = orig_counts = reply_counts = stamps = None
    mark = 0
    ct_id = '-'
    p = 20
    while p + 4 <= end:
        alen, atype = ATTR.unpack_from(data, p)
        if alen < 4:
            break
        t = atype & 0x3fff
        if t == 1:
            orig = (p + 4, p + alen)
        elif t == 2:
            reply = (p + 4, p + alen)
        elif t == 8:
            mark = BE32.unpack_from(data, p + 4)[0]
        elif t == 12:
            ct_id = BE32.unpack_from(data, p + 4)[0]
        elif t == 4:
            proto = (p + 4, p + alen)
        elif t == 9:
            orig_counts = (p + 4, p + alen)
        elif t == 10:
            reply_counts = (p + 4, p + alen)
        elif t == 20:
            stamps = (p + 4, p + alen)
        p += (alen + 3) & ~3
    if mark & MARK != MARK or orig is None or reply is None:
        return None
    o = fast_tuple(data, orig) or flow_tuple(data, orig)
    r = fast_tuple(data, reply) or flow_tuple(data, reply)
    if o is None or r is None:
        return None
    state = '-'
    if proto is not None:
        if proto[1] - proto[0] >= 9:
            nl, nt, sl, st, value = STATE.unpack_from(data, proto[0])
            if nt & 0x3fff == 1 and sl == 5 and st == 1:
                state = value
        if state == '-':
            tcp = nested(data, proto).get(1)
            found = None if tcp is None else nested(data, tcp).get(1)
            if found is not None:
                state = data[found[0]]
    start = stop = '-'
    if stamps is not None:
        start, stop = counters(data, stamps)
    oc = counters(data, orig_counts)
    rc = counters(data, reply_counts)
    return LINE % ('D' if kind == CT_DELETE else 'N', ct_id, o[0], state, o[1], o[2], o[3], o[4], r[1], r[2], r[3], r[4], oc[0], oc[1], rc[0], rc[1], mark, start, stop, portid, received)

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
    granted = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    # Only a buffer that holds thousands of events can wait while they gather.
    gather = granted >= GATHER_MIN_BUFFER
    out.write(('R 1 buffer=%d filter=%s events=%s\n' % (granted, where, EVENTS)).encode())
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
    # Lines wait up to FLUSH_S (or until there are many) and go out in one write: the daemon wakes
    # a few times a second instead of once per flow. The socket itself is drained at once, always.
    pending = []
    since = 0.0
    while True:
        wait = -1 if not pending else max(0, int((since + FLUSH_S - time.monotonic()) * 1000))
        for fd, _ in poll.poll(wait):
            if fd == stdin:
                if not os.read(stdin, 4096):
                    if pending:
                        out.write(('\n'.join(pending) + '\n').encode())
                        out.flush()
                    return 0
                continue
            if not pending:
                since = time.monotonic()
            # One time for the whole drain: what it read arrived within the gather pause.
            received = time.time_ns()
            while True:
                try:
                    n = sock.recv_into(buf)
                except BlockingIOError:
                    if dirty:
                        dirty = False
                        total = drops_of(inode)
                        if total is not None and total > drops:
                            pending.append('L %d %d %d' % (total - drops, total, time.time_ns()))
                            drops = total
                    break
                except OSError as err:
                    if err.errno != errno.ENOBUFS:
                        raise
                    total = drops_of(inode)
                    pending.append('L %s %s %d' % ('-' if total is None else total - drops, '-' if total is None else total, time.time_ns()))
                    drops = drops if total is None else total
                    dirty = True
                    continue
                # Each receive is one message (the kernel sends each event in its own skb): read it in
                # place; a second one in the same receive would be read from a copy.
                offset = 0
                while offset + 20 <= n:
                    length = unpack('=I', buf, offset)[0]
                    if length < 20 or offset + length > n:
                        break
                    line = line_of(buf if offset == 0 else bytes(buf[offset:offset + length]), received)
                    if line is not None:
                        pending.append(line)
                    offset += (length + 3) & ~3
        if pending and (len(pending) >= FLUSH_LINES or time.monotonic() - since >= FLUSH_S):
            out.write(('\n'.join(pending) + '\n').encode())
            out.flush()
            pending = []
        if pending and gather:
            # Let events gather in the socket for a moment (it holds thousands): one wake-up then reads
            # many, where one a flow would cost a poll, a failed receive and a loop each.
            time.sleep(GATHER_S)

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
