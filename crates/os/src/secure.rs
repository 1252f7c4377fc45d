//! Whether this process runs in secure-execution mode: set-user-ID, set-group-ID or with file capabilities, so
//! its environment was set by a less privileged caller and must not decide whom it trusts.

/// Whether the kernel marked this process as one whose environment is not to be trusted (`AT_SECURE` in its
/// auxiliary vector): its effective uid or gid differs from the real one since exec (a set-user-ID or set-group-ID
/// program), it gained capabilities at exec, or a security module asked for it. The dynamic loader then ignores
/// `LD_PRELOAD` and the like; shmbus ignores the environment variables that redirect its trust (see
/// `shmbus_proto::trust::env_var`).
///
/// ```
/// // A test binary is no set-user-ID program.
/// assert!(!shmbus_os::secure_execution());
/// ```
pub fn secure_execution() -> bool {
    // SAFETY: getauxval only reads the auxiliary vector the kernel placed at exec, which lives as long as the
    // process; for a type it lacks it returns 0, which here means "not secure" (AT_SECURE is there since 2.6.0).
    unsafe { libc::getauxval(libc::AT_SECURE) != 0 }
}
