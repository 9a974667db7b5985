//! Clients for the four providers behind one trait, sharing one HTTP layer.
