//! The MEC orchestrator (MEAO): ETSI MEC 010-2 Mm1 package management and application LCM,
//! site inventory, placement and the MEP link. Not built yet: see the open issues.
