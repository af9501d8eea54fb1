//! Private AMHT-LRS (user-level joint DP; only `U` is released). Being written.
