"""Dashboard pages: short scripts that read rows and write jobs (never torch)."""
