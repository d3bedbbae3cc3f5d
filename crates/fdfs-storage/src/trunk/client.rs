//! The member side of the trunk protocol: asks the trunk server for slots (27/28/29).
