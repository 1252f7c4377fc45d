//! [`setters!`]: the builder methods that store one argument and return the builder.

/// Declares builder methods that each store their argument in a field and return the builder:
/// `name(arg: Type) => field = value;` becomes `pub fn name(mut self, arg: Type) -> Self`, which sets
/// `self.field = value`. Doc comments and other attributes go before each line.
macro_rules! setters {
    ($($(#[$attr:meta])* $name:ident($arg:ident: $ty:ty) => $field:ident = $value:expr;)*) => {
        $(
            $(#[$attr])*
            pub fn $name(mut self, $arg: $ty) -> Self {
                self.$field = $value;
                self
            }
        )*
    };
}
