/*
 * bpf-agent: the guest-side half of the BPF JIT harness. It reads a bundle of test cases,
 * loads and runs them with raw bpf(2) syscalls (or attaches them to a veth device, over raw
 * rtnetlink) and reports what the kernel did, one line per result, on an output channel of its
 * own (the guest's second serial port). The input and output formats are specified in
 * PROTOCOL.md next to this file; all judging is the host's.
 *
 * Plain C with libc and the kernel uapi headers only (no libbpf), so that Debian's cross
 * compilers build it statically for every guest: 32- and 64-bit, either byte order.
 * Usage: bpf-agent BUNDLE OUTPUT
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <net/if.h> /* not linux/if.h: glibc's own ifreq and IFF_* would clash with it */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>

#define MAX_SLOTS 64
#define MAX_LINE (1 << 20)
#define MAX_FIELDS 9
#define MAX_INSNS 1000000 /* BPF_COMPLEXITY_LIMIT_INSNS */
#define LOG_SIZE (64 * 1024)
#define NOBODY 65534
#define LDDW (BPF_LD | BPF_IMM | BPF_DW)

/* Whether an lddw's imm is a map: a map slot in the bundle, its fd once loaded. */
static int names_map(const struct bpf_insn *in)
{
	return in->src_reg == BPF_PSEUDO_MAP_FD || in->src_reg == BPF_PSEUDO_MAP_VALUE;
}
#define JIT_ENABLE "/proc/sys/net/core/bpf_jit_enable"
#define JIT_HARDEN "/proc/sys/net/core/bpf_jit_harden"
/* The veth pair of ATTACH: frames go into HOST0 and come out of HOST1, where the XDP program
 * is. */
#define HOST0 "bpfh0"
#define HOST1 "bpfh1"
#define SYS_NET "/sys/class/net/"
#define IPV6_CONF "/proc/sys/net/ipv6/conf/"

enum { F_RUN = 1, F_UNPRIV = 2, F_JITDUMP = 4, F_LOG = 8, F_ATTACH = 16 };
/* How far setup() got. STOPPED: a map operation failed and only `done` follows. */
enum { STOPPED, LOAD_FAILED, LOADED };

struct blob { unsigned char *p; size_t n; };
struct map_def { int used, inner; uint32_t type, key_size, value_size, max_entries, flags; };
struct prog_def { int used; uint32_t type, attach, flags, n; struct bpf_insn *insns; };
/* A mapinit, mapprog, mapmap or readmap record. */
struct op { int slot, target; uint32_t key; struct blob k, v; };
struct ops { struct op *v; size_t n; };

struct tcase {
	struct tcase *next;
	char *id;
	unsigned flags;
	struct map_def map[MAX_SLOTS];
	int map_order[MAX_SLOTS], nmaps; /* bundle order: an inner map exists before its outer */
	struct prog_def prog[MAX_SLOTS];
	struct ops init, mapprog, mapmap, readmap;
	struct blob data;
	uint32_t repeat;
};

struct ctx {
	int out, tty;
	int kmsg;         /* /dev/kmsg, read from its end on; -1 when it cannot be opened */
	size_t ncpu;      /* possible CPUs, for per-CPU map values */
	int unpriv_ready; /* unprivileged_bpf_disabled has been written */
	char *log;        /* the verifier log, LOG_SIZE bytes */
	int veth_tried;   /* the veth pair was created (or that failed with veth_err) */
	int veth_err;
	int host0, host1; /* the pair's ifindexes */
};

/* ---- output ---- */

/* Writes one line with a single write(), so lines never interleave. When bin is not NULL,
 * its n bytes are appended as a last hex field, `-` when n is 0. */
__attribute__((format(printf, 4, 5))) static void emit(struct ctx *x, const void *bin,
						       size_t n, const char *fmt, ...)
{
	const unsigned char *b = bin;
	va_list ap;
	va_start(ap, fmt);
	int len = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	size_t size = (size_t)(len < 0 ? 0 : len) + 2 * n + 4, pos = (size_t)len;
	char *buf = malloc(size);
	if (len < 0 || !buf) {
		fprintf(stderr, "bpf-agent: out of memory\n");
		exit(1);
	}
	va_start(ap, fmt);
	vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	if (b) {
		buf[pos++] = ' ';
		if (!n)
			buf[pos++] = '-';
		for (size_t i = 0; i < n; i++) {
			buf[pos++] = "0123456789abcdef"[b[i] >> 4];
			buf[pos++] = "0123456789abcdef"[b[i] & 15];
		}
	}
	buf[pos++] = '\n';
	for (size_t done = 0; done < pos;) {
		ssize_t w = write(x->out, buf + done, pos - done);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			fprintf(stderr, "bpf-agent: cannot write output: %s\n", strerror(errno));
			exit(1);
		}
		done += (size_t)w;
	}
	/* Out of the tty buffer before going on: a JIT bug may panic the kernel next. */
	if (x->tty)
		tcdrain(x->out);
	free(buf);
}

__attribute__((format(printf, 2, 3), noreturn)) static void die(struct ctx *x, const char *fmt,
								...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	emit(x, NULL, 0, "agent error %s", msg);
	exit(1);
}

static void *xalloc(struct ctx *x, size_t n)
{
	void *p = calloc(1, n ? n : 1);
	if (!p)
		die(x, "out of memory");
	return p;
}

/* Opens the bundle at `path`: a file, or the BAR of the shared-memory window that sysfs gives
 * only to mmap(2). Either way it is mapped and read up to its first NUL, so the window's bundle
 * is never copied into the guest's memory. */
static FILE *open_bundle(struct ctx *x, const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;

	if (fd < 0 || fstat(fd, &st) != 0)
		die(x, "cannot open %s: %s", path, strerror(errno));
	const char *map = st.st_size ? mmap(NULL, st.st_size, PROT_READ, MAP_SHARED, fd, 0) : "";
	close(fd);
	if (map == MAP_FAILED)
		die(x, "cannot map %s: %s", path, strerror(errno));
	size_t len = strnlen(map, st.st_size);
	/* An empty bundle reads as an empty file, refused by the parser as any other. */
	FILE *f = len ? fmemopen((void *)map, len, "r") : fopen("/dev/null", "re");
	if (!f)
		die(x, "cannot read %s: %s", path, strerror(errno));
	return f;
}

/* ---- bundle parser: the whole bundle is checked before anything runs ---- */

struct parser {
	struct ctx *x;
	FILE *f;
	unsigned long line;
	char *buf, *tok[MAX_FIELDS];
	int ntok;
};

__attribute__((format(printf, 2, 3), noreturn)) static void perr(struct parser *p,
								 const char *fmt, ...)
{
	char msg[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	die(p->x, "line %lu: %s", p->line, msg);
}

/* Reads the next line and splits it at single spaces. Returns 0 at the end of the file. */
static int next_line(struct parser *p)
{
	if (!fgets(p->buf, MAX_LINE, p->f)) {
		if (ferror(p->f))
			die(p->x, "cannot read the bundle: %s", strerror(errno));
		return 0;
	}
	p->line++;
	size_t len = strlen(p->buf);
	if (len && p->buf[len - 1] == '\n')
		p->buf[--len] = 0;
	else if (!feof(p->f))
		perr(p, "line longer than %d bytes", MAX_LINE - 2);
	for (size_t i = 0; i < len; i++)
		if (p->buf[i] < ' ' || p->buf[i] > '~')
			perr(p, "invalid character 0x%02x", (unsigned char)p->buf[i]);
	p->ntok = 0;
	for (char *s = p->buf;; s++) {
		char *sp = strchr(s, ' ');
		if (sp == s || !*s)
			perr(p, "empty field");
		if (p->ntok == MAX_FIELDS)
			perr(p, "too many fields");
		p->tok[p->ntok++] = s;
		if (!sp)
			return 1;
		*(s = sp) = 0;
	}
}

static void need(struct parser *p, int fields)
{
	if (p->ntok != fields + 1)
		perr(p, "'%s' takes %d fields, not %d", p->tok[0], fields, p->ntok - 1);
}

/* Field i as a decimal number in lo..hi. */
static long long num(struct parser *p, int i, long long lo, long long hi)
{
	const char *t = p->tok[i], *digits = t + (t[0] == '-' && lo < 0), *s = digits;
	unsigned long long v = 0;
	for (; *s >= '0' && *s <= '9' && v < (1ULL << 40); s++)
		v = v * 10 + (unsigned)(*s - '0');
	long long r = digits > t ? -(long long)v : (long long)v;
	if (*s || s == digits || r < lo || r > hi)
		perr(p, "field %d '%s' is not a number in %lld..%lld", i, p->tok[i], lo, hi);
	return r;
}

/* Field i as lowercase hex bytes, or `-` for none. */
static struct blob hex(struct parser *p, int i)
{
	static const char digits[] = "0123456789abcdef";
	const char *s = p->tok[i], *d;
	struct blob b = { NULL, 0 };
	if (!strcmp(s, "-"))
		return b;
	if (strlen(s) % 2)
		perr(p, "field %d: odd number of hex digits", i);
	b.p = xalloc(p->x, b.n = strlen(s) / 2);
	for (size_t j = 0; s[j]; j++) {
		if (!(d = strchr(digits, s[j])))
			perr(p, "field %d: '%c' is not a lowercase hex digit", i, s[j]);
		b.p[j / 2] = (unsigned char)(b.p[j / 2] << 4 | (d - digits));
	}
	return b;
}

/* Field i naming a map slot defined earlier in the case. */
static int map_slot(struct parser *p, const struct tcase *c, int i)
{
	int s = (int)num(p, i, 0, MAX_SLOTS - 1);
	if (!c->map[s].used)
		perr(p, "map slot %d is not defined", s);
	return s;
}

static void check_len(struct parser *p, const struct blob *b, uint32_t size, const char *what)
{
	if (b->n != size)
		perr(p, "%s has %zu bytes, the map's %s size is %u", what, b->n, what, size);
}

static struct op *push(struct parser *p, struct ops *o)
{
	if (!(o->v = realloc(o->v, (o->n + 1) * sizeof *o->v)))
		die(p->x, "out of memory");
	memset(&o->v[o->n], 0, sizeof *o->v);
	return &o->v[o->n++];
}

static void parse_prog(struct parser *p, struct tcase *c)
{
	need(p, 5);
	int s = (int)num(p, 1, 0, MAX_SLOTS - 1), second = 0;
	struct prog_def *d = &c->prog[s];
	if (d->used)
		perr(p, "prog slot %d defined twice", s);
	d->used = 1;
	d->type = (uint32_t)num(p, 2, 0, UINT32_MAX);
	d->attach = (uint32_t)num(p, 3, 0, UINT32_MAX);
	d->flags = (uint32_t)num(p, 4, 0, UINT32_MAX);
	d->n = (uint32_t)num(p, 5, 0, MAX_INSNS);
	d->insns = xalloc(p->x, d->n * sizeof *d->insns);
	for (uint32_t i = 0; i < d->n; i++) {
		if (!next_line(p) || strcmp(p->tok[0], "insn"))
			perr(p, "prog slot %d has %u insn lines, not %u", s, i, d->n);
		need(p, 5);
		struct bpf_insn *in = &d->insns[i];
		in->code = (uint8_t)num(p, 1, 0, 255);
		in->dst_reg = (uint8_t)num(p, 2, 0, 15) & 0xf;
		in->src_reg = (uint8_t)num(p, 3, 0, 15) & 0xf;
		in->off = (int16_t)num(p, 4, INT16_MIN, INT16_MAX);
		in->imm = (int32_t)num(p, 5, INT32_MIN, INT32_MAX);
		/* The same walk as load(): the insn after an lddw is its second half. */
		if (!second && in->code == LDDW && names_map(in) &&
		    (in->imm < 0 || in->imm >= MAX_SLOTS || !c->map[in->imm].used))
			perr(p, "lddw names map slot %d, which is not defined", (int)in->imm);
		second = !second && in->code == LDDW;
	}
}

/* Parses a case up to its `end`. Its records come in the order of names[]. */
static struct tcase *parse_case(struct parser *p)
{
	static const char *const names[] = { "map",  "mapinit", "mapprog", "mapmap", "prog",
					     "data", "repeat",  "readmap", "end" };
	enum { MAP, MAPINIT, MAPPROG, MAPMAP, PROG, DATA, REPEAT, READMAP, END };
	need(p, 2);
	struct tcase *c = xalloc(p->x, sizeof *c);
	if (!(c->id = strdup(p->tok[1])))
		die(p->x, "out of memory");
	c->flags = (unsigned)num(p, 2, 0, F_RUN | F_UNPRIV | F_JITDUMP | F_LOG | F_ATTACH);
	c->repeat = 1;
	for (int k, last = MAP;; last = k) {
		if (!next_line(p))
			perr(p, "end of file in case %s", c->id);
		for (k = MAP; k <= END && strcmp(p->tok[0], names[k]); k++)
			;
		if (k > END)
			perr(p, "unknown record '%s' in a case", p->tok[0]);
		if (k < last || (k == last && (k == DATA || k == REPEAT)))
			perr(p, "'%s' out of order or repeated", p->tok[0]);
		struct map_def *m;
		struct op *o;
		if (k == MAP) {
			need(p, 7);
			int s = (int)num(p, 1, 0, MAX_SLOTS - 1);
			if ((m = &c->map[s])->used)
				perr(p, "map slot %d defined twice", s);
			m->type = (uint32_t)num(p, 2, 0, UINT32_MAX);
			m->key_size = (uint32_t)num(p, 3, 0, UINT32_MAX);
			m->value_size = (uint32_t)num(p, 4, 0, UINT32_MAX);
			m->max_entries = (uint32_t)num(p, 5, 0, UINT32_MAX);
			m->flags = (uint32_t)num(p, 6, 0, UINT32_MAX);
			m->inner = strcmp(p->tok[7], "-") ? map_slot(p, c, 7) : -1;
			m->used = 1;
			c->map_order[c->nmaps++] = s;
		} else if (k == MAPINIT) {
			need(p, 3);
			o = push(p, &c->init);
			m = &c->map[o->slot = map_slot(p, c, 1)];
			o->k = hex(p, 2);
			o->v = hex(p, 3);
			check_len(p, &o->k, m->key_size, "key");
			check_len(p, &o->v, m->value_size, "value");
		} else if (k == MAPPROG || k == MAPMAP) {
			need(p, 3);
			o = push(p, k == MAPPROG ? &c->mapprog : &c->mapmap);
			o->slot = map_slot(p, c, 1);
			if (c->map[o->slot].key_size != 4)
				perr(p, "map slot %d does not have 4-byte keys", o->slot);
			o->key = (uint32_t)num(p, 2, 0, UINT32_MAX);
			/* Prog slots are checked at `end`: the progs come later. */
			o->target = k == MAPMAP ? map_slot(p, c, 3)
						: (int)num(p, 3, 0, MAX_SLOTS - 1);
		} else if (k == PROG) {
			parse_prog(p, c);
		} else if (k == DATA) {
			need(p, 1);
			c->data = hex(p, 1);
		} else if (k == REPEAT) {
			need(p, 1);
			c->repeat = (uint32_t)num(p, 1, 0, UINT32_MAX);
		} else if (k == READMAP) {
			need(p, 2);
			o = push(p, &c->readmap);
			o->slot = map_slot(p, c, 1);
			o->k = hex(p, 2);
			check_len(p, &o->k, c->map[o->slot].key_size, "key");
		} else {
			need(p, 0);
			if (!c->prog[0].used)
				perr(p, "case %s has no prog slot 0", c->id);
			for (size_t i = 0; i < c->mapprog.n; i++)
				if (!c->prog[c->mapprog.v[i].target].used)
					perr(p, "mapprog names prog slot %d, which is not defined",
					     c->mapprog.v[i].target);
			return c;
		}
	}
}

/* ---- running a case ---- */

static int sys_bpf(int cmd, union bpf_attr *a)
{
	return (int)syscall(__NR_bpf, cmd, a, sizeof *a);
}

/* The value size the kernel copies for a map, as bpf_map_value_size() in kernel/bpf/syscall.c. */
static size_t value_len(const struct ctx *x, const struct map_def *m)
{
	switch (m->type) {
	case BPF_MAP_TYPE_PERCPU_HASH:
	case BPF_MAP_TYPE_PERCPU_ARRAY:
	case BPF_MAP_TYPE_LRU_PERCPU_HASH:
	case BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE:
		return (((size_t)m->value_size + 7) & ~(size_t)7) * x->ncpu;
	}
	return m->value_size; /* fd maps (an fd in, an id out) all have 4-byte values */
}

/* BPF_MAP_UPDATE_ELEM or BPF_MAP_LOOKUP_ELEM; returns the errno or 0. */
static int map_elem(int cmd, int fd, const void *key, void *value)
{
	union bpf_attr a;
	memset(&a, 0, sizeof a);
	a.map_fd = (uint32_t)fd;
	a.key = (uintptr_t)key;
	a.value = (uintptr_t)value;
	a.flags = BPF_ANY;
	return sys_bpf(cmd, &a) < 0 ? errno : 0;
}

/* BPF_PROG_LOAD with the lddw map slots replaced by fds, and log_level 1 when log is given. */
static int load(struct ctx *x, const struct prog_def *d, const int *mapfd, char *log)
{
	struct bpf_insn *in = xalloc(x, d->n * sizeof *in);
	memcpy(in, d->insns, d->n * sizeof *in);
	for (uint32_t i = 0; i < d->n; i++)
		if (in[i].code == LDDW) {
			if (names_map(&in[i]))
				in[i].imm = mapfd[in[i].imm];
			i++;
		}
	union bpf_attr a;
	memset(&a, 0, sizeof a);
	a.prog_type = d->type;
	a.insn_cnt = d->n;
	a.insns = (uintptr_t)in;
	a.license = (uintptr_t) "GPL";
	a.prog_flags = d->flags;
	a.expected_attach_type = d->attach;
	if (log) {
		log[0] = 0;
		a.log_level = 1;
		a.log_size = LOG_SIZE;
		a.log_buf = (uintptr_t)log;
	}
	int fd = sys_bpf(BPF_PROG_LOAD, &a), err = errno;
	free(in);
	errno = err;
	return fd;
}

/* Creates and fills the maps, loads the programs and fills the prog arrays. Reports failed
 * map operations, the `load` lines and the `log` line. */
static int setup(struct ctx *x, const struct tcase *c, uint32_t mode, int *mapfd, int *progfd)
{
	union bpf_attr a;
	for (int i = 0; i < c->nmaps; i++) {
		int s = c->map_order[i];
		const struct map_def *m = &c->map[s];
		memset(&a, 0, sizeof a);
		a.map_type = m->type;
		a.key_size = m->key_size;
		a.value_size = m->value_size;
		a.max_entries = m->max_entries;
		a.map_flags = m->flags;
		a.inner_map_fd = m->inner >= 0 ? (uint32_t)mapfd[m->inner] : 0;
		if ((mapfd[s] = sys_bpf(BPF_MAP_CREATE, &a)) < 0) {
			emit(x, "", 0, "map %s %u %d %d", c->id, mode, s, errno);
			return STOPPED;
		}
	}
	/* mapinit, then mapmap: both need only the maps. */
	for (size_t i = 0; i < c->init.n + c->mapmap.n; i++) {
		int init = i < c->init.n;
		const struct op *o = init ? &c->init.v[i] : &c->mapmap.v[i - c->init.n];
		const struct map_def *m = &c->map[o->slot];
		size_t len = value_len(x, m), stride = ((size_t)m->value_size + 7) & ~(size_t)7;
		unsigned char *v = xalloc(x, len);
		uint32_t fd = init ? 0 : (uint32_t)mapfd[o->target];
		if (!init)
			memcpy(v, &fd, sizeof fd);
		else if (len == o->v.n)
			memcpy(v, o->v.p, len);
		else /* a per-CPU map: the same value for every CPU */
			for (size_t at = 0; at < len; at += stride)
				memcpy(v + at, o->v.p, o->v.n);
		int err = map_elem(BPF_MAP_UPDATE_ELEM, mapfd[o->slot],
				   init ? (const void *)o->k.p : &o->key, v);
		free(v);
		if (err) {
			emit(x, "", 0, "map %s %u %d %d", c->id, mode, o->slot, err);
			return STOPPED;
		}
	}
	int err0 = 0, loaded = 1;
	for (int s = 0; s < MAX_SLOTS && loaded; s++) {
		const struct prog_def *d = &c->prog[s];
		if (!d->used)
			continue;
		int log = s == 0 && (c->flags & F_LOG);
		int fd = load(x, d, mapfd, log ? x->log : NULL), err = fd < 0 ? errno : 0;
		if (log && err == ENOSPC) {
			/* A full log alone fails the load: get the kernel's verdict without it. */
			fd = load(x, d, mapfd, NULL);
			err = fd < 0 ? errno : 0;
		} else if (s == 0 && err) {
			/* Again for the log only: the first attempt's errno is the one reported. */
			int again = load(x, d, mapfd, x->log);
			if (again >= 0)
				close(again);
		}
		loaded = (progfd[s] = fd) >= 0;
		err0 = s == 0 ? err : err0;
		emit(x, NULL, 0, "load %s %u %d %d", c->id, mode, s, err);
	}
	if (err0 || (c->flags & F_LOG))
		emit(x, x->log, strnlen(x->log, LOG_SIZE), "log %s %u", c->id, mode);
	if (!loaded)
		return LOAD_FAILED;
	for (size_t i = 0; i < c->mapprog.n; i++) {
		const struct op *o = &c->mapprog.v[i];
		uint32_t fd = (uint32_t)progfd[o->target];
		int err = map_elem(BPF_MAP_UPDATE_ELEM, mapfd[o->slot], &o->key, &fd);
		if (err) {
			emit(x, "", 0, "map %s %u %d %d", c->id, mode, o->slot, err);
			return STOPPED;
		}
	}
	return LOADED;
}

static void test_run(struct ctx *x, const struct tcase *c, uint32_t mode, int fd)
{
	uint32_t cap = (uint32_t)(c->data.n > 256 ? c->data.n : 256) + 256;
	unsigned char *out = xalloc(x, cap);
	union bpf_attr a;
	memset(&a, 0, sizeof a);
	a.test.prog_fd = (uint32_t)fd;
	a.test.data_in = (uintptr_t)c->data.p;
	a.test.data_size_in = (uint32_t)c->data.n;
	a.test.data_out = (uintptr_t)out;
	a.test.data_size_out = cap;
	a.test.repeat = c->repeat;
	int err = sys_bpf(BPF_PROG_TEST_RUN, &a) < 0 ? errno : 0;
	/* With ENOSPC the program did run, and data_size_out is the whole output's size. */
	if (err && err != ENOSPC)
		a.test.retval = a.test.duration = a.test.data_size_out = 0;
	emit(x, NULL, 0, "run %s %u %d %u %u %u", c->id, mode, err, a.test.retval,
	     a.test.duration, a.test.data_size_out);
	emit(x, out, a.test.data_size_out < cap ? a.test.data_size_out : cap, "out %s %u", c->id,
	     mode);
	free(out);
}

static void read_maps(struct ctx *x, const struct tcase *c, uint32_t mode, const int *mapfd)
{
	for (size_t i = 0; i < c->readmap.n; i++) {
		const struct op *o = &c->readmap.v[i];
		size_t len = value_len(x, &c->map[o->slot]);
		unsigned char *v = xalloc(x, len);
		int err = map_elem(BPF_MAP_LOOKUP_ELEM, mapfd[o->slot], o->k.p, v);
		emit(x, v, err ? 0 : len, "map %s %u %d %d", c->id, mode, o->slot, err);
		free(v);
	}
}

static int prog_info(int fd, struct bpf_prog_info *info)
{
	union bpf_attr a;
	memset(&a, 0, sizeof a);
	a.info.bpf_fd = (uint32_t)fd;
	a.info.info_len = sizeof *info;
	a.info.info = (uintptr_t)info;
	return sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &a);
}

static void report_jit(struct ctx *x, const struct tcase *c, uint32_t mode, int fd)
{
	struct bpf_prog_info info;
	memset(&info, 0, sizeof info);
	if (prog_info(fd, &info) < 0)
		memset(&info, 0, sizeof info);
	uint32_t jlen = info.jited_prog_len, xlen = info.xlated_prog_len, n = 0;
	unsigned char *image = NULL;
	if ((c->flags & F_JITDUMP) && jlen) {
		image = xalloc(x, jlen);
		memset(&info, 0, sizeof info);
		info.jited_prog_len = jlen;
		info.jited_prog_insns = (uintptr_t)image;
		/* The kernel clears jited_prog_insns when it will not show the image. */
		if (prog_info(fd, &info) == 0 && info.jited_prog_insns)
			n = info.jited_prog_len < jlen ? info.jited_prog_len : jlen;
	}
	emit(x, image ? (const void *)image : "", n, "jit %s %u %d %u %u", c->id, mode, jlen > 0,
	     jlen, xlen);
	free(image);
}

static void write_sysctl(const char *path, uint32_t v)
{
	char b[16];
	int n = snprintf(b, sizeof b, "%u\n", v), fd = open(path, O_WRONLY);
	/* A refused value (a JIT that is always on, say) shows in the read-back. */
	if (fd >= 0 && write(fd, b, (size_t)n) != n) {
		/* ignored on purpose */
	}
	if (fd >= 0)
		close(fd);
}

/* ATTACH runs a program on a real device, set up over rtnetlink (in host byte order, so the
 * same on every guest). A link request: its header, its ifinfomsg, then the attributes. */
struct nlreq {
	struct nlmsghdr h;
	struct ifinfomsg i;
	char attrs[128]; /* the largest request, the veth pair's, takes 64 bytes */
};

static void nl_link(struct nlreq *r, uint16_t type, uint16_t flags, int ifindex)
{
	memset(r, 0, sizeof *r);
	r->h.nlmsg_len = NLMSG_LENGTH(sizeof r->i);
	r->h.nlmsg_type = type;
	r->h.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
	r->i.ifi_family = AF_UNSPEC;
	r->i.ifi_index = ifindex;
}

/* Appends an attribute. A nest starts empty (len 0) and is closed by nl_end(). */
static struct rtattr *nl_put(struct nlreq *r, uint16_t type, const void *data, size_t len)
{
	struct rtattr *a = (struct rtattr *)((char *)r + NLMSG_ALIGN(r->h.nlmsg_len));
	a->rta_type = type;
	a->rta_len = (uint16_t)RTA_LENGTH(len);
	if (len)
		memcpy(RTA_DATA(a), data, len);
	r->h.nlmsg_len = NLMSG_ALIGN(r->h.nlmsg_len) + RTA_ALIGN(a->rta_len);
	return a;
}

static void nl_end(struct nlreq *r, struct rtattr *nest)
{
	nest->rta_len = (uint16_t)((char *)r + r->h.nlmsg_len - (char *)nest);
}

/* Sends one request on a socket of its own and reads its ACK. Returns the errno, 0 for an ACK
 * without error. */
static int nl_talk(struct nlreq *r)
{
	union { struct nlmsghdr h; char b[1024]; } ack; /* an error ACK quotes the request */
	struct timeval tv = { .tv_sec = 10 };           /* never hang */
	ssize_t n = -1;
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE), err = 0;
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) ||
	    send(fd, r, r->h.nlmsg_len, 0) < 0 || (n = recv(fd, &ack, sizeof ack, 0)) < 0)
		err = errno;
	else if ((size_t)n < NLMSG_LENGTH(sizeof(struct nlmsgerr)) ||
		 ack.h.nlmsg_type != NLMSG_ERROR)
		err = EPROTO;
	else
		err = -((struct nlmsgerr *)NLMSG_DATA(&ack.h))->error;
	if (fd >= 0)
		close(fd);
	return err;
}

/* Attaches prog fd to ifindex as a native XDP program, or detaches it with fd -1. */
static int set_xdp(int ifindex, int32_t fd)
{
	struct nlreq r;
	uint32_t flags = XDP_FLAGS_DRV_MODE;
	nl_link(&r, RTM_SETLINK, 0, ifindex);
	struct rtattr *xdp = nl_put(&r, IFLA_XDP, NULL, 0);
	nl_put(&r, IFLA_XDP_FD, &fd, sizeof fd);
	nl_put(&r, IFLA_XDP_FLAGS, &flags, sizeof flags);
	nl_end(&r, xdp);
	return nl_talk(&r);
}

static void nap_ms(long ms)
{
	struct timespec t = { .tv_sec = ms / 1000, .tv_nsec = ms % 1000 * 1000000 };
	while (nanosleep(&t, &t) && errno == EINTR)
		;
}

/* Whether an operstate file says "up". Linkwatch sets it, under the RTNL, in the same pass
 * that gives the device its queues (until then its frames go to noop_qdisc and vanish), so the
 * next rtnetlink request completes only once the device can send. */
static int oper_up(const char *path)
{
	char b[8];
	int fd = open(path, O_RDONLY);
	ssize_t n = fd < 0 ? -1 : read(fd, b, sizeof b);
	if (fd >= 0)
		close(fd);
	return n == 3 && !memcmp(b, "up\n", 3);
}

/* Creates the veth pair HOST0 <-> HOST1 once, and sets both ends up. Returns the errno. */
static int veth_pair(struct ctx *x)
{
	if (x->veth_tried)
		return x->veth_err;
	x->veth_tried = 1;
	struct nlreq r;
	struct ifinfomsg peer = { .ifi_family = AF_UNSPEC };
	nl_link(&r, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, 0);
	nl_put(&r, IFLA_IFNAME, HOST0, sizeof HOST0);
	struct rtattr *info = nl_put(&r, IFLA_LINKINFO, NULL, 0);
	nl_put(&r, IFLA_INFO_KIND, "veth", sizeof "veth");
	struct rtattr *data = nl_put(&r, IFLA_INFO_DATA, NULL, 0);
	struct rtattr *p = nl_put(&r, VETH_INFO_PEER, &peer, sizeof peer);
	nl_put(&r, IFLA_IFNAME, HOST1, sizeof HOST1);
	nl_end(&r, p);
	nl_end(&r, data);
	nl_end(&r, info);
	int err = nl_talk(&r);
	if (!err && (!(x->host0 = (int)if_nametoindex(HOST0)) ||
		     !(x->host1 = (int)if_nametoindex(HOST1))))
		err = errno;
	if (!err) { /* no IPv6 (DAD, solicitations, MLD): the frames are the case's alone */
		write_sysctl(IPV6_CONF HOST0 "/disable_ipv6", 1);
		write_sysctl(IPV6_CONF HOST1 "/disable_ipv6", 1);
	}
	for (int i = 0; i < 2 && !err; i++) {
		nl_link(&r, RTM_NEWLINK, 0, i ? x->host1 : x->host0);
		r.i.ifi_flags = r.i.ifi_change = IFF_UP;
		err = nl_talk(&r);
	}
	for (int ms = 0; !err && !(oper_up(SYS_NET HOST0 "/operstate") &&
				   oper_up(SYS_NET HOST1 "/operstate"));
	     ms += 10) {
		if (ms >= 5000)
			err = ETIMEDOUT;
		else
			nap_ms(10);
	}
	return x->veth_err = err;
}

/* ATTACH: prog fd as native XDP on HOST1, the `data` frame sent `repeat` times into HOST0,
 * 100 ms for the frames to cross, then detached. Reports the first failure. */
static void attach_run(struct ctx *x, const struct tcase *c, uint32_t mode, int fd)
{
	uint32_t sent = 0;
	int err = veth_pair(x), attached = !err && !(err = set_xdp(x->host1, fd)), s = -1;
	struct sockaddr_ll ll = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL),
				  .sll_ifindex = x->host0 };
	if (attached && ((s = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL))) < 0 ||
			 bind(s, (struct sockaddr *)&ll, sizeof ll) < 0))
		err = errno;
	while (!err && sent < c->repeat) {
		if (send(s, c->data.p, c->data.n, 0) < 0)
			err = errno;
		else
			sent++;
	}
	if (s >= 0)
		close(s);
	if (attached) {
		nap_ms(100);
		int derr = set_xdp(x->host1, -1);
		err = err ? err : derr;
	}
	emit(x, NULL, 0, "attach %s %u %d %u", c->id, mode, err, sent);
}

/* UNPRIV: a child without privileges creates the maps and loads the programs. The `jit` line
 * needs a privileged fd (the kernel hides the JIT from unprivileged callers, and the image even
 * from root through an fd an unprivileged process opened): the child sends prog slot 0's id and
 * keeps the program alive until this process has opened it by id. */
static void run_unpriv(struct ctx *x, const struct tcase *c, uint32_t mode)
{
	if (!x->unpriv_ready) /* on failure, the loads fail with EPERM and the host judges */
		write_sysctl("/proc/sys/kernel/unprivileged_bpf_disabled", 0);
	x->unpriv_ready = 1;
	int ids[2], go[2], status, fd = -1;
	struct bpf_prog_info info;
	memset(&info, 0, sizeof info);
	if (pipe(ids) || pipe(go))
		die(x, "pipe: %s", strerror(errno));
	pid_t pid = fork();
	if (pid < 0)
		die(x, "fork: %s", strerror(errno));
	if (pid == 0) {
		int mapfd[MAX_SLOTS], progfd[MAX_SLOTS];
		memset(mapfd, -1, sizeof mapfd);
		memset(progfd, -1, sizeof progfd);
		close(ids[0]);
		close(go[1]);
		if (setgroups(0, NULL) || setresgid(NOBODY, NOBODY, NOBODY) ||
		    setresuid(NOBODY, NOBODY, NOBODY))
			die(x, "cannot drop privileges: %s", strerror(errno));
		if (setup(x, c, mode, mapfd, progfd) != STOPPED) {
			read_maps(x, c, mode, mapfd);
			if (progfd[0] >= 0 && prog_info(progfd[0], &info) == 0 &&
			    write(ids[1], &info.id, sizeof info.id) == sizeof info.id)
				while (read(go[0], &info.id, 1) < 0 && errno == EINTR)
					; /* EOF: the parent has opened the program */
		}
		_exit(0);
	}
	close(ids[1]);
	close(go[0]);
	union bpf_attr a;
	memset(&a, 0, sizeof a);
	if (read(ids[0], &a.prog_id, sizeof a.prog_id) == sizeof a.prog_id)
		fd = sys_bpf(BPF_PROG_GET_FD_BY_ID, &a);
	close(ids[0]);
	close(go[1]);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			die(x, "waitpid: %s", strerror(errno));
	if (WIFEXITED(status) && WEXITSTATUS(status) == 1)
		exit(1); /* the child wrote its `agent error` */
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		die(x, "the unprivileged child of case %s ended with status 0x%x", c->id, status);
	if (fd >= 0) {
		report_jit(x, c, mode, fd);
		close(fd);
	}
}

/* Sends the kernel's log records of KERN_WARNING or worse written since the last call as
 * `kmsg` lines of the case that ran: the console and this channel are two serial ports with
 * no common clock, so only the agent can tell which case a splat came in. */
static void forward_kmsg(struct ctx *x, const struct tcase *c, uint32_t mode)
{
	char rec[8192 + 1]; /* CONSOLE_EXT_LOG_MAX: the most one record reads as */
	while (x->kmsg >= 0) {
		/* One record per read. EPIPE: records were overwritten before we read them; the
		 * next read gives the oldest one left. */
		ssize_t n = read(x->kmsg, rec, sizeof rec - 1);
		if (n < 0 && (errno == EPIPE || errno == EINTR))
			continue;
		if (n <= 0)
			return; /* EAGAIN: none left */
		rec[n] = 0;
		/* `<facility * 8 + level>,<seq>,<usec>,<flags>...;<text>\n`, then key=value lines. */
		char *text = strchr(rec, ';'), *end;
		if (!text || strtol(rec, NULL, 10) % 8 > 4)
			continue;
		text++;
		end = strchr(text, '\n');
		emit(x, text, (size_t)((end ? end : rec + n) - text), "kmsg %s %u", c->id, mode);
	}
}

static void run_case(struct ctx *x, const struct tcase *c, uint32_t mode)
{
	int mapfd[MAX_SLOTS], progfd[MAX_SLOTS];
	memset(mapfd, -1, sizeof mapfd);
	memset(progfd, -1, sizeof progfd);
	if (c->flags & F_UNPRIV) {
		run_unpriv(x, c, mode); /* nothing is run, even with RUN */
	} else {
		int st = setup(x, c, mode, mapfd, progfd);
		/* Before the run: a program that never returns leaves its image on the host. */
		if (st != STOPPED && progfd[0] >= 0)
			report_jit(x, c, mode, progfd[0]);
		if (st == LOADED && (c->flags & F_ATTACH)) /* instead of RUN */
			attach_run(x, c, mode, progfd[0]);
		else if (st == LOADED && (c->flags & F_RUN))
			test_run(x, c, mode, progfd[0]);
		if (st != STOPPED)
			read_maps(x, c, mode, mapfd);
	}
	for (int s = 0; s < MAX_SLOTS; s++) {
		if (mapfd[s] >= 0)
			close(mapfd[s]);
		if (progfd[s] >= 0)
			close(progfd[s]);
	}
	forward_kmsg(x, c, mode);
	emit(x, NULL, 0, "done %s %u", c->id, mode);
}

/* ---- main ---- */

static int read_sysctl(struct ctx *x, const char *path)
{
	char b[32];
	int fd = open(path, O_RDONLY);
	ssize_t n = fd < 0 ? -1 : read(fd, b, sizeof b - 1);
	if (n <= 0)
		die(x, "cannot read %s: %s", path, n < 0 ? strerror(errno) : "empty");
	close(fd);
	b[n] = 0;
	return atoi(b);
}

int main(int argc, char **argv)
{
	struct ctx x = { .tty = 0 };
	if (argc != 3) {
		fprintf(stderr, "usage: bpf-agent BUNDLE OUTPUT\n");
		return 1;
	}
	if ((x.out = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC | O_NOCTTY, 0644)) < 0) {
		fprintf(stderr, "bpf-agent: cannot open %s: %s\n", argv[2], strerror(errno));
		return 1;
	}
	struct termios t;
	if (isatty(x.out) && tcgetattr(x.out, &t) == 0) {
		cfmakeraw(&t); /* no \n to \r\n translation */
		tcsetattr(x.out, TCSANOW, &t);
		x.tty = 1;
	}
	/* Old records are not this run's: only those written from now on are read. */
	if ((x.kmsg = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC)) >= 0)
		lseek(x.kmsg, 0, SEEK_END);
	struct utsname un;
	if (uname(&un))
		die(&x, "uname: %s", strerror(errno));
	emit(&x, NULL, 0, "agent hello 1 %s", un.release);
	long ncpu = sysconf(_SC_NPROCESSORS_CONF); /* glibc reads /sys/.../cpu/possible */
	x.ncpu = ncpu > 0 ? (size_t)ncpu : 1;
	x.log = xalloc(&x, LOG_SIZE);

	struct parser p = { .x = &x, .buf = xalloc(&x, MAX_LINE) };
	p.f = open_bundle(&x, argv[1]);
	if (!next_line(&p) || strcmp(p.tok[0], "bundle")) {
		p.line = 1; /* also for an empty file */
		perr(&p, "expected 'bundle 1'");
	}
	need(&p, 1);
	if (strcmp(p.tok[1], "1"))
		perr(&p, "unsupported bundle version '%s'", p.tok[1]);
	uint32_t(*modes)[3] = NULL; /* index, bpf_jit_enable, bpf_jit_harden */
	size_t nmodes = 0;
	/* A guest resumed after a crash or hang starts past the case in flight. */
	uint32_t start_mode = 0, start_skip = 0;
	struct tcase *cases = NULL, **tail = &cases;
	while (next_line(&p)) {
		if (!strcmp(p.tok[0], "mode") && !cases) {
			need(&p, 3);
			if (!(modes = realloc(modes, (nmodes + 1) * sizeof *modes)))
				die(&x, "out of memory");
			modes[nmodes][0] = (uint32_t)num(&p, 1, 0, UINT32_MAX);
			modes[nmodes][1] = (uint32_t)num(&p, 2, 0, 2);
			modes[nmodes++][2] = (uint32_t)num(&p, 3, 0, 2);
		} else if (!strcmp(p.tok[0], "start") && !cases) {
			need(&p, 2);
			start_mode = (uint32_t)num(&p, 1, 0, UINT32_MAX);
			start_skip = (uint32_t)num(&p, 2, 0, UINT32_MAX);
		} else if (!strcmp(p.tok[0], "case")) {
			*tail = parse_case(&p);
			tail = &(*tail)->next;
		} else {
			perr(&p, "unknown or misplaced record '%s'", p.tok[0]);
		}
	}
	fclose(p.f);
	free(p.buf);

	for (size_t i = 0; i < nmodes; i++) {
		if (modes[i][0] < start_mode)
			continue;
		write_sysctl(JIT_ENABLE, modes[i][1]);
		write_sysctl(JIT_HARDEN, modes[i][2]);
		emit(&x, NULL, 0, "mode %u begin %d %d", modes[i][0], read_sysctl(&x, JIT_ENABLE),
		     read_sysctl(&x, JIT_HARDEN));
		/* The whole pass is timed in the guest: host-side timing would include the serial
		 * port's latency. */
		struct timespec t0, t1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		uint32_t skip = modes[i][0] == start_mode ? start_skip : 0;
		for (const struct tcase *c = cases; c; c = c->next) {
			if (skip) {
				skip--;
				continue;
			}
			run_case(&x, c, modes[i][0]);
		}
		clock_gettime(CLOCK_MONOTONIC, &t1);
		unsigned long long ns = (unsigned long long)(t1.tv_sec - t0.tv_sec) * 1000000000ULL +
					(unsigned long long)t1.tv_nsec - (unsigned long long)t0.tv_nsec;
		emit(&x, NULL, 0, "mode %u end %llu", modes[i][0], ns);
	}
	emit(&x, NULL, 0, "agent bye");
	return 0;
}
