package event

// Actions of the OWASP Logging Vocabulary
// (https://cheatsheetseries.owasp.org/cheatsheets/Logging_Vocabulary_Cheat_Sheet.html),
// for event.action. The vocabulary writes parameters after a colon
// ("authn_login_fail:joebob1"); in Vigil the action is the name alone and the
// parameters go to their own fields (user.name, ...).
const (
	ActionAuthnLoginSuccess          = "authn_login_success"
	ActionAuthnLoginSuccessAfterFail = "authn_login_successafterfail"
	ActionAuthnLoginFail             = "authn_login_fail"
	ActionAuthnLoginFailMax          = "authn_login_fail_max"
	ActionAuthnLoginLock             = "authn_login_lock"
	ActionAuthnPasswordChange        = "authn_password_change"
	ActionAuthnPasswordChangeFail    = "authn_password_change_fail"
	ActionAuthnImpossibleTravel      = "authn_impossible_travel"
	ActionAuthnTokenCreated          = "authn_token_created"
	ActionAuthnTokenRevoked          = "authn_token_revoked"
	ActionAuthnTokenReuse            = "authn_token_reuse"
	ActionAuthnTokenDelete           = "authn_token_delete"
	ActionAuthzFail                  = "authz_fail"
	ActionAuthzChange                = "authz_change"
	ActionAuthzAdmin                 = "authz_admin"
	ActionCryptDecryptFail           = "crypt_decrypt_fail"
	ActionCryptEncryptFail           = "crypt_encrypt_fail"
	ActionExcessRateLimitExceeded    = "excess_rate_limit_exceeded"
	ActionUploadComplete             = "upload_complete"
	ActionUploadStored               = "upload_stored"
	ActionUploadValidation           = "upload_validation"
	ActionUploadDelete               = "upload_delete"
	ActionInputValidationFail        = "input_validation_fail"
	ActionMaliciousExcess404         = "malicious_excess_404"
	ActionMaliciousExtraneous        = "malicious_extraneous"
	ActionMaliciousAttackTool        = "malicious_attack_tool"
	ActionMaliciousSQLi              = "malicious_sqli"
	ActionMaliciousCORS              = "malicious_cors"
	ActionMaliciousDirectReference   = "malicious_direct_reference"
	ActionMaliciousCSRF              = "malicious_csrf"
	ActionPrivilegePermissionsChange = "privilege_permissions_changed"
	ActionSensitiveCreate            = "sensitive_create"
	ActionSensitiveRead              = "sensitive_read"
	ActionSensitiveUpdate            = "sensitive_update"
	ActionSensitiveDelete            = "sensitive_delete"
	ActionSequenceFail               = "sequence_fail"
	ActionSessionCreated             = "session_created"
	ActionSessionRenewed             = "session_renewed"
	ActionSessionExpired             = "session_expired"
	ActionSessionUseAfterExpire      = "session_use_after_expire"
	ActionSysStartup                 = "sys_startup"
	ActionSysShutdown                = "sys_shutdown"
	ActionSysRestart                 = "sys_restart"
	ActionSysCrash                   = "sys_crash"
	ActionSysMonitorDisabled         = "sys_monitor_disabled"
	ActionSysMonitorEnabled          = "sys_monitor_enabled"
	ActionUserCreated                = "user_created"
	ActionUserUpdated                = "user_updated"
	ActionUserArchived               = "user_archived"
	ActionUserDeleted                = "user_deleted"
)

// Vigil's own actions, in the same style, for what the OWASP vocabulary does
// not name.
const (
	ActionSysConfigChange     = "sys_config_change"     // a setting changed: vigil.change.{key,old,new}
	ActionHTTPRequest         = "http_request"          // a request the application served
	ActionHTTPRequestOutgoing = "http_request_outgoing" // a request the application made
	ActionCommandRun          = "command_run"           // a command (management command, CLI) ran
	ActionJobRun              = "job_run"               // a background job ran
)

// OWASPActions lists the OWASP Logging Vocabulary actions, in the order of
// the cheat sheet.
var OWASPActions = []string{
	ActionAuthnLoginSuccess, ActionAuthnLoginSuccessAfterFail, ActionAuthnLoginFail,
	ActionAuthnLoginFailMax, ActionAuthnLoginLock, ActionAuthnPasswordChange,
	ActionAuthnPasswordChangeFail, ActionAuthnImpossibleTravel, ActionAuthnTokenCreated,
	ActionAuthnTokenRevoked, ActionAuthnTokenReuse, ActionAuthnTokenDelete,
	ActionAuthzFail, ActionAuthzChange, ActionAuthzAdmin,
	ActionCryptDecryptFail, ActionCryptEncryptFail,
	ActionExcessRateLimitExceeded,
	ActionUploadComplete, ActionUploadStored, ActionUploadValidation, ActionUploadDelete,
	ActionInputValidationFail,
	ActionMaliciousExcess404, ActionMaliciousExtraneous, ActionMaliciousAttackTool,
	ActionMaliciousSQLi, ActionMaliciousCORS, ActionMaliciousDirectReference, ActionMaliciousCSRF,
	ActionPrivilegePermissionsChange,
	ActionSensitiveCreate, ActionSensitiveRead, ActionSensitiveUpdate, ActionSensitiveDelete,
	ActionSequenceFail,
	ActionSessionCreated, ActionSessionRenewed, ActionSessionExpired, ActionSessionUseAfterExpire,
	ActionSysStartup, ActionSysShutdown, ActionSysRestart, ActionSysCrash,
	ActionSysMonitorDisabled, ActionSysMonitorEnabled,
	ActionUserCreated, ActionUserUpdated, ActionUserArchived, ActionUserDeleted,
}

// VigilActions lists Vigil's own actions.
var VigilActions = []string{
	ActionSysConfigChange, ActionHTTPRequest, ActionHTTPRequestOutgoing,
	ActionCommandRun, ActionJobRun,
}

var (
	owaspActions = setOf(OWASPActions)
	vigilActions = setOf(VigilActions)
)

func setOf(names []string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

// IsOWASPAction reports whether action is an action of the OWASP Logging
// Vocabulary.
func IsOWASPAction(action string) bool { return owaspActions[action] }

// IsKnownAction reports whether action is an OWASP action or one of Vigil's
// own. Parse accepts any action; this only tells whether Vigil knows it.
func IsKnownAction(action string) bool { return owaspActions[action] || vigilActions[action] }
