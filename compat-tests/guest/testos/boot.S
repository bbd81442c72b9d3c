/* testos boot: PVH entry (32-bit protected mode, paging off, %ebx = hvm_start_info) or
 * multiboot2 entry (the same, %eax = 0x36d76289, %ebx = multiboot2 information), own GDT,
 * identity map of the low 4 GiB with 2 MiB pages, long mode, then kmain(). */

#define SEL_CODE32 0x08
#define SEL_DATA   0x10
#define SEL_CODE64 0x18
#define MSR_EFER   0xC0000080

/* PVH entry point note: XEN_ELFNOTE_PHYS32_ENTRY (18), owner "Xen".
 * The descriptor is 8 bytes (the entry's physical address in the low 32 bits). */
	.section .note.Xen, "a", @note
	.balign 4
	.long 4
	.long 8
	.long 18
	.asciz "Xen"
	.balign 4
	.quad pvh_entry

/* Multiboot2 header (GRUB's `multiboot2`): 8-byte aligned within the file's first
 * 32 KiB; linker.ld puts it first in the image, at file offset 0x1000. No address tag:
 * the loader takes the PT_LOAD segment from the ELF headers. Tags: an optional
 * information request (command line, memory map, EFI 64-bit system table, ACPI old and
 * new RSDP) and the entry address, which is required: the ELF entry is the PVH entry. */
#define MB2_HEADER_MAGIC 0xE85250D6
	.section .multiboot2, "a"
	.balign 8
mb2_header:
	.long MB2_HEADER_MAGIC
	.long 0                         /* architecture: i386 protected mode */
	.long mb2_header_end - mb2_header
	.long 0x100000000 - (MB2_HEADER_MAGIC + (mb2_header_end - mb2_header))
	.balign 8
mb2_tag_request:
	.word 1                         /* information request */
	.word 1                         /* optional */
	.long mb2_tag_request_end - mb2_tag_request
	.long 1, 6, 12, 14, 15
mb2_tag_request_end:
	.balign 8
	.word 3                         /* entry address */
	.word 0
	.long 12
	.long mb2_entry
	.balign 8
	.word 0                         /* end */
	.word 0
	.long 8
mb2_header_end:

	.section .text.boot, "ax"
	.code32
/* Multiboot2 entry: keep the loader's %eax for kmain to check, then the PVH path. */
	.globl mb2_entry
mb2_entry:
	cli
	cld
	movl %eax, boot_mb2_magic
	movl $1, boot_protocol
	jmp 0f

	.globl pvh_entry
pvh_entry:
	cli
	cld
0:	movl %ebx, %esi                 /* keep start_info (or the multiboot2 info) */
	lgdt gdt_ptr
	ljmp $SEL_CODE32, $1f
1:	movw $SEL_DATA, %ax
	movw %ax, %ds
	movw %ax, %es
	movw %ax, %ss
	movw %ax, %fs
	movw %ax, %gs
	movl $boot_stack_top, %esp

	/* Clear .bss (page tables live there; the stacks do not). */
	movl $__bss_start, %edi
	movl $__bss_end, %ecx
	subl %edi, %ecx
	shrl $2, %ecx
	xorl %eax, %eax
	rep stosl

	/* PML4[0] -> PDPT; PDPT[0..3] -> four page directories of 2 MiB pages. Every
	 * level allows user mode (bit 2): the throughput modes run in ring 3 (ring3.S). */
	movl $pdpt + 7, pml4
	movl $pd + 7, %eax
	movl %eax, pdpt
	addl $4096, %eax
	movl %eax, pdpt + 8
	addl $4096, %eax
	movl %eax, pdpt + 16
	addl $4096, %eax
	movl %eax, pdpt + 24
	xorl %ecx, %ecx
2:	movl %ecx, %eax
	shll $21, %eax
	orl $0x87, %eax                 /* present, writable, user, 2 MiB page */
	cmpl $1536, %ecx                /* 3 GiB and up: MMIO, uncached */
	jb 3f
	orl $0x18, %eax
3:	movl %eax, pd(,%ecx,8)
	incl %ecx
	cmpl $2048, %ecx
	jb 2b

	movl %cr4, %eax
	orl $0x20, %eax                 /* PAE */
	movl %eax, %cr4
	movl $pml4, %eax
	movl %eax, %cr3
	movl $MSR_EFER, %ecx
	rdmsr
	orl $0x100, %eax                /* LME */
	wrmsr
	movl %cr0, %eax
	orl $0x80000001, %eax           /* PG | PE */
	movl %eax, %cr0
	ljmp $SEL_CODE64, $long_entry

	.code64
long_entry:
	movw $SEL_DATA, %ax
	movw %ax, %ds
	movw %ax, %es
	movw %ax, %ss
	movw %ax, %fs
	movw %ax, %gs
	movq $boot_stack_top, %rsp
	movl %esi, %edi
	call kmain
4:	cli
	hlt
	jmp 4b

/* APs arrive here from the trampoline in long mode, on their own stack. */
	.globl ap_entry64
ap_entry64:
	lgdt gdt_ptr
	movw $SEL_DATA, %ax
	movw %ax, %ds
	movw %ax, %es
	movw %ax, %ss
	movw %ax, %fs
	movw %ax, %gs
	call ap_main
5:	cli
	hlt
	jmp 5b

/* Triple fault on purpose: an empty IDT makes any exception escalate. */
	.globl triple_fault
triple_fault:
	lidt empty_idt
	ud2
	jmp triple_fault

	.section .data
	/* Set by mb2_entry before .bss is cleared: 0 = PVH, 1 = multiboot2. */
	.balign 4
	.globl boot_protocol, boot_mb2_magic
boot_protocol:
	.long 0
boot_mb2_magic:
	.long 0
	.balign 8
	.globl gdt
gdt:
	.quad 0
	.quad 0x00cf9a000000ffff        /* 0x08: 32-bit code */
	.quad 0x00cf92000000ffff        /* 0x10: data */
	.quad 0x00af9a000000ffff        /* 0x18: 64-bit code */
	.quad 0x00cff2000000ffff        /* 0x20: user data (DPL 3) */
	.quad 0x00affa000000ffff        /* 0x28: user 64-bit code (DPL 3) */
	.globl gdt_tss
gdt_tss:
	.quad 0, 0                      /* 0x30: TSS, filled in by user.c */
gdt_end:
	.balign 8
	.word 0
	.globl gdt_ptr
gdt_ptr:
	.word gdt_end - gdt - 1
	.quad gdt
	.balign 8
	.word 0
empty_idt:
	.word 0
	.quad 0

	.section .bss
	.balign 4096
	.globl pml4
pml4:	.skip 4096
pdpt:	.skip 4096
pd:	.skip 4 * 4096

	.section .stack, "aw", @nobits
	.balign 16
	.skip 16384
boot_stack_top:
