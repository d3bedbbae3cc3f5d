//! Which storage of the group is the trunk server, as the trackers say, and the switch of this storage into and out of that role.
