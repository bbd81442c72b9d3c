/* Ring 3 for the throughput modes: on this project's paravirtualised /dev/kvm the
 * guest's ring-0 code is emulated instruction by instruction while ring-3 code runs
 * natively, so request loops run in user mode (the page tables allow user access
 * everywhere; RFLAGS.IOPL is 3, yet port I/O from ring 3 raises #GP on this host's
 * KVM, so user code prints nothing).
 *
 * u64 user_call(u64 (*fn)(void *), void *arg, void *stack_top): runs fn(arg) in ring 3
 * on stack_top and returns its result. The user side comes back through the invalid
 * opcode exception of the `ud2` at user_exit (that paravirtualised KVM refuses `int n`
 * from user mode; exceptions are delivered): isr_dispatch recognises it and calls
 * user_return. */
#define SEL_UDATA 0x23
#define SEL_UCODE 0x2b

	.section .text
	.code64
	.globl user_call
user_call:
	pushq %rbx
	pushq %rbp
	pushq %r12
	pushq %r13
	pushq %r14
	pushq %r15
	movq %rsp, user_kernel_rsp(%rip)
	movq %rdi, %rax                 /* fn */
	movq %rsi, %rdi                 /* arg */
	pushq $SEL_UDATA                /* ss */
	pushq %rdx                      /* rsp */
	pushq $0x3002                   /* rflags: IOPL 3, interrupts off */
	pushq $SEL_UCODE                /* cs */
	leaq user_trampoline(%rip), %rcx
	pushq %rcx                      /* rip */
	iretq

user_trampoline:
	call *%rax
	movq %rax, user_result(%rip)
	.globl user_exit
user_exit:
	ud2

/* From the exception handler, on the TSS stack: back to user_call's caller. */
	.globl user_return
user_return:
	movq user_kernel_rsp(%rip), %rsp
	movw $0x10, %ax
	movw %ax, %ds
	movw %ax, %es
	popq %r15
	popq %r14
	popq %r13
	popq %r12
	popq %rbp
	popq %rbx
	movq user_result(%rip), %rax
	ret

	.section .bss
	.balign 8
user_kernel_rsp:
	.skip 8
user_result:
	.skip 8
