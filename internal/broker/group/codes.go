package group

// Kafka error codes the coordinator answers with (the values of the kerr
// errors of the same names; a test keeps them in step).
const (
	codeUnknownServerError        int16 = -1
	codeNotCoordinator            int16 = 16
	codeCoordinatorNotAvailable   int16 = 15
	codeOffsetMetadataTooLarge    int16 = 12
	codeIllegalGeneration         int16 = 22
	codeInconsistentGroupProtocol int16 = 23
	codeInvalidGroupID            int16 = 24
	codeUnknownMemberID           int16 = 25
	codeInvalidSessionTimeout     int16 = 26
	codeRebalanceInProgress       int16 = 27
	codeNonEmptyGroup             int16 = 68
	codeGroupIDNotFound           int16 = 69
	codeMemberIDRequired          int16 = 79
	codeGroupMaxSizeReached       int16 = 81
	codeFencedInstanceID          int16 = 82
	codeGroupSubscribedToTopic    int16 = 86
	codeUnstableOffsetCommit      int16 = 88
)
