/* Kernel command line: oxtest.* options, separated by spaces. */
#include "testos.h"

struct options opt;

static bool parse_int(const char *s, usize n, i64 *out)
{
	i64 v = 0;
	if (n > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		for (usize i = 2; i < n; i++) {
			char c = s[i];
			int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 :
				c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
			if (d < 0)
				return false;
			v = v * 16 + d;
		}
		*out = v;
		return true;
	}
	bool neg = false;
	if (n && *s == '-') {
		neg = true;
		s++;
		n--;
	}
	if (!n)
		return false;
	for (usize i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*out = neg ? -v : v;
	return true;
}

static void copy_val(char *dst, usize dsz, const char *v, usize n)
{
	if (n >= dsz)
		n = dsz - 1;
	memcpy(dst, v, n);
	dst[n] = 0;
}

/* BASE:SIZE, both hex with 0x */
static void parse_range(const char *v, usize n)
{
	usize c = 0;
	while (c < n && v[c] != ':')
		c++;
	i64 b, s;
	if (c < n && parse_int(v, c, &b) && parse_int(v + c + 1, n - c - 1, &s)) {
		opt.mmio32 = (u64)b;
		opt.mmio32_size = (u64)s;
	}
}

/* WxH, both decimal; left unchanged if malformed */
static void parse_size(const char *v, usize n, u32 *w, u32 *h)
{
	usize c = 0;
	while (c < n && v[c] != 'x')
		c++;
	i64 a, b;
	if (c < n && parse_int(v, c, &a) && parse_int(v + c + 1, n - c - 1, &b) && a > 0 &&
	    b > 0 && a <= 0xFFFF && b <= 0xFFFF) {
		*w = (u32)a;
		*h = (u32)b;
	}
}

bool parse_ipv4(const char *v, usize n, u32 *out)
{
	u32 ip = 0;
	int part = 0, nd = 0, val = 0;
	for (usize i = 0; i <= n; i++) {
		if (i == n || v[i] == '.') {
			if (!nd || val > 255 || part > 3)
				return false;
			ip |= (u32)val << (8 * part++);
			val = nd = 0;
		} else if (v[i] >= '0' && v[i] <= '9' && nd < 3) {
			val = val * 10 + (v[i] - '0');
			nd++;
		} else {
			return false;
		}
	}
	if (part != 4)
		return false;
	*out = ip;
	return true;
}

/* oxtest.ip: dhcp, A.B.C.D or A.B.C.D/PREFIX */
static void parse_ip(const char *v, usize n)
{
	if (n == 4 && memcmp(v, "dhcp", 4) == 0) {
		opt.dhcp = 1;
		return;
	}
	usize c = 0;
	while (c < n && v[c] != '/')
		c++;
	u32 ip;
	i64 prefix = 24;
	if (!parse_ipv4(v, c, &ip) ||
	    (c < n && (!parse_int(v + c + 1, n - c - 1, &prefix) || prefix < 0 || prefix > 32)))
		return;
	opt.ip = ip;
	opt.prefix = (int)prefix;
	opt.dhcp = 0;
}

void cmdline_parse(const char *cl)
{
	memset(&opt, 0, sizeof(opt));
	opt.cpus = -1;
	opt.mem_mib = -1;
	opt.epoch = -1;
	opt.gedirq = -1;
	opt.hprefuse = -1;
	opt.blkwrite = 64;
	opt.blkzero = -1;
	opt.vsock_port = 1234;
	opt.vsock_cid = 2;
	opt.ip = 15u << 24 | 2u << 16 | 10u;   /* 10.0.2.15, bytes in wire order */
	opt.prefix = 24;
	copy_val(opt.hostname, sizeof(opt.hostname), "oxtest", 6);
	opt.netreachcount = 3;
	opt.netsend = 4;
	opt.nettime_ms = 10000;
	opt.netserve_s = 30;
	opt.balloonwait_ms = 10000;
	opt.timeout_ms = 5000;
	opt.intx_gsi = -1;
	opt.disp_w = 640;
	opt.disp_h = 480;
	copy_val(opt.checks, sizeof(opt.checks), "e820,acpi,smp,rtc", 17);
	copy_val(opt.then, sizeof(opt.then), "halt", 4);
	if (!cl)
		return;
	while (*cl) {
		while (*cl == ' ' || *cl == '\t' || *cl == '\n')
			cl++;
		const char *tok = cl;
		while (*cl && *cl != ' ' && *cl != '\t' && *cl != '\n')
			cl++;
		usize len = (usize)(cl - tok);
		if (!len)
			continue;
		const char *eq = tok;
		while (eq < cl && *eq != '=')
			eq++;
		if (eq == cl)
			continue;
		usize klen = (usize)(eq - tok);
		const char *v = eq + 1;
		usize vlen = (usize)(cl - v);
		i64 n;
#define KEY(k) (klen == sizeof(k) - 1 && memcmp(tok, k, klen) == 0)
		if (KEY("oxtest.checks"))
			copy_val(opt.checks, sizeof(opt.checks), v, vlen);
		else if (KEY("oxtest.then"))
			copy_val(opt.then, sizeof(opt.then), v, vlen);
		else if (KEY("oxtest.cpus") && parse_int(v, vlen, &n))
			opt.cpus = (int)n;
		else if (KEY("oxtest.mem") && parse_int(v, vlen, &n))
			opt.mem_mib = n;
		else if (KEY("oxtest.epoch") && parse_int(v, vlen, &n))
			opt.epoch = n;
		else if (KEY("oxtest.pci") && parse_int(v, vlen, &n))
			opt.pci = n != 0;
		else if (KEY("oxtest.x2apic") && parse_int(v, vlen, &n))
			opt.x2apic = n != 0;
		else if (KEY("oxtest.e820"))
			opt.e820_lax = vlen == 3 && memcmp(v, "lax", 3) == 0;
		else if (KEY("oxtest.fillmib") && parse_int(v, vlen, &n))
			opt.fill_mib = (u32)n;
		else if (KEY("oxtest.tickdev") && parse_int(v, vlen, &n))
			opt.tickdev = n != 0;
		else if (KEY("oxtest.tickmem") && parse_int(v, vlen, &n))
			opt.tickmem_mib = (u32)n;
		else if (KEY("oxtest.gedirq") && parse_int(v, vlen, &n))
			opt.gedirq = (int)n;
		else if (KEY("oxtest.hprefuse") && parse_int(v, vlen, &n))
			opt.hprefuse = (int)n;
		else if (KEY("oxtest.devs"))
			copy_val(opt.devs, sizeof(opt.devs), v, vlen);
		else if (KEY("oxtest.ecam") && parse_int(v, vlen, &n))
			opt.ecam = (u64)n;
		else if (KEY("oxtest.mmio32"))
			parse_range(v, vlen);
		else if (KEY("oxtest.blkwrite") && parse_int(v, vlen, &n))
			opt.blkwrite = n;
		else if (KEY("oxtest.blkzero") && parse_int(v, vlen, &n))
			opt.blkzero = n;
		else if (KEY("oxtest.console"))
			opt.console_echo = vlen == 4 && memcmp(v, "echo", 4) == 0;
		else if (KEY("oxtest.vsockport") && parse_int(v, vlen, &n))
			opt.vsock_port = (u32)n;
		else if (KEY("oxtest.vsockcid") && parse_int(v, vlen, &n))
			opt.vsock_cid = (u32)n;
		else if (KEY("oxtest.ip"))
			parse_ip(v, vlen);
		else if (KEY("oxtest.gw"))
			parse_ipv4(v, vlen, &opt.gw);
		else if (KEY("oxtest.hostname"))
			copy_val(opt.hostname, sizeof(opt.hostname), v, vlen);
		else if (KEY("oxtest.netreach"))
			parse_ipv4(v, vlen, &opt.netreach);
		else if (KEY("oxtest.netreachcount") && parse_int(v, vlen, &n))
			opt.netreachcount = (int)n;
		else if (KEY("oxtest.netsend") && parse_int(v, vlen, &n))
			opt.netsend = (int)n;
		else if (KEY("oxtest.netrecv") && parse_int(v, vlen, &n))
			opt.netrecv = (int)n;
		else if (KEY("oxtest.netping") && parse_int(v, vlen, &n))
			opt.netping = (int)n;
		else if (KEY("oxtest.netudp") && parse_int(v, vlen, &n))
			opt.netudp = (int)n;
		else if (KEY("oxtest.nettime") && parse_int(v, vlen, &n))
			opt.nettime_ms = n;
		else if (KEY("oxtest.netserve") && parse_int(v, vlen, &n))
			opt.netserve_s = n;
		else if (KEY("oxtest.balloonpages") && parse_int(v, vlen, &n))
			opt.balloon_pages = (int)n;
		else if (KEY("oxtest.balloonwait") && parse_int(v, vlen, &n))
			opt.balloonwait_ms = n;
		else if (KEY("oxtest.timeout") && parse_int(v, vlen, &n))
			opt.timeout_ms = n;
		else if (KEY("oxtest.irq"))
			opt.irq = vlen == 4 && memcmp(v, "msix", 4) == 0 ? IRQ_MSIX :
				  vlen == 4 && memcmp(v, "intx", 4) == 0 ? IRQ_INTX : IRQ_POLL;
		else if (KEY("oxtest.intxgsi") && parse_int(v, vlen, &n))
			opt.intx_gsi = (int)n;
		else if (KEY("oxtest.e1000garbage") && parse_int(v, vlen, &n))
			opt.e1000_garbage = n != 0;
		else if (KEY("oxtest.eventidx") && parse_int(v, vlen, &n))
			opt.event_idx = n != 0;
		else if (KEY("oxtest.indirect") && parse_int(v, vlen, &n))
			opt.indirect = n != 0;
		else if (KEY("oxtest.blkbench"))
			copy_val(opt.blkbench, sizeof(opt.blkbench), v, vlen);
		else if (KEY("oxtest.blkspan") && parse_int(v, vlen, &n))
			opt.blkspan_mib = n;
		else if (KEY("oxtest.netbench"))
			copy_val(opt.netbench, sizeof(opt.netbench), v, vlen);
		else if (KEY("oxtest.display"))
			parse_size(v, vlen, &opt.disp_w, &opt.disp_h);
		else if (KEY("oxtest.display.resize"))
			parse_size(v, vlen, &opt.resize_w, &opt.resize_h);
#undef KEY
	}
}

const char *next_item(const char *list, char *item, usize itemsz)
{
	if (!list || !*list)
		return NULL;
	const char *e = list;
	while (*e && *e != ',')
		e++;
	copy_val(item, itemsz, list, (usize)(e - list));
	return *e ? e + 1 : e;
}
