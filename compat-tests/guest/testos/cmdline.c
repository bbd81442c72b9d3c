/* Kernel command line: oxtest.* options, separated by spaces. */
#include "testos.h"

struct options opt;

static bool parse_int(const char *s, usize n, i64 *out)
{
	i64 v = 0;
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

void cmdline_parse(const char *cl)
{
	memset(&opt, 0, sizeof(opt));
	opt.cpus = -1;
	opt.mem_mib = -1;
	opt.epoch = -1;
	opt.gedirq = -1;
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
		else if (KEY("oxtest.gedirq") && parse_int(v, vlen, &n))
			opt.gedirq = (int)n;
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
