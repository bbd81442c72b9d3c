/* AP start-up code. Copied to TRAMP_BASE (0x8000) by the BSP; an AP starts here in
 * real mode after SIPI vector 0x08 (CS = 0x0800, IP = 0). It switches to protected
 * mode, enables PAE paging with the BSP's page tables and long mode, then jumps to
 * ap_entry64 on the stack the BSP left in tramp_stack. */

#define TRAMP_BASE 0x8000
#define ABS(x) ((x) - tramp_start + TRAMP_BASE)

	.section .rodata.tramp, "a"
	.balign 16
	.globl tramp_start, tramp_end, tramp_cr3, tramp_stack, tramp_entry
	.code16
tramp_start:
	cli
	cld
	xorw %ax, %ax
	movw %ax, %ds
	lgdtl ABS(tramp_gdtr)
	movl %cr0, %eax
	orl $1, %eax
	movl %eax, %cr0
	ljmpl $0x08, $ABS(tramp32)

	.code32
tramp32:
	movw $0x10, %ax
	movw %ax, %ds
	movw %ax, %es
	movw %ax, %ss
	movl %cr4, %eax
	orl $0x20, %eax
	movl %eax, %cr4
	movl ABS(tramp_cr3), %eax
	movl %eax, %cr3
	movl $0xC0000080, %ecx
	rdmsr
	orl $0x100, %eax
	wrmsr
	movl %cr0, %eax
	orl $0x80000000, %eax
	movl %eax, %cr0
	ljmp $0x18, $ABS(tramp64)

	.code64
tramp64:
	movq ABS(tramp_stack), %rsp
	jmpq *ABS(tramp_entry)

	.balign 8
tramp_gdt:
	.quad 0
	.quad 0x00cf9a000000ffff
	.quad 0x00cf92000000ffff
	.quad 0x00af9a000000ffff
tramp_gdt_end:
	.balign 8
	.word 0
tramp_gdtr:
	.word tramp_gdt_end - tramp_gdt - 1
	.long ABS(tramp_gdt)
	.balign 8
tramp_cr3:	.long 0, 0
tramp_stack:	.quad 0
tramp_entry:	.quad 0
tramp_end:
