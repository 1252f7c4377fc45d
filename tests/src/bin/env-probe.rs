//! Prints what the client library takes from the environment, one `key value` line each: whether this process
//! runs in secure execution, the socket it would connect to and whether that was given (not discovered), the
//! daemon user it trusts, and how many inherited pipes it claimed. The trust tests run a set-user-ID copy of it.
use bus_client::discovery;

fn main() {
    let found = discovery::client_socket(None, &discovery::trusted_uids());
    println!("secure {}", shmbus_os::secure_execution());
    println!("socket {}", found.path.display());
    println!("given {}", !found.discovered);
    println!("daemon_user {}", discovery::daemon_user().map_or_else(|| "none".to_string(), |u| u.to_string()));
    println!("pipes {}", bus_client::pipe::inherited().len());
    println!("ignored {}", discovery::ignored_env().join(","));
}
