package redisbus

// Partition exposes partition, for tests that need rooms heard through the same connection.
var Partition = partition

// Partitions exposes partitions.
const Partitions = partitions
