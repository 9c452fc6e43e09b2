<?php

/**
 * A local stand-in for one of the real sign-in sources (an institution's SAML IdP, Google,
 * Microsoft): it asks for an address, checks no password, and releases the attributes the real
 * source would, so that the authproc chain and core:TargetedID run exactly as on a cloud hub.
 * Configured only on local hubs.
 */

namespace SimpleSAML\Module\callysto\Auth\Source;

use SimpleSAML\Auth;
use SimpleSAML\Error;
use SimpleSAML\Module;
use SimpleSAML\Utils;

class StandIn extends Auth\Source
{
    public const STAGEID = '\SimpleSAML\Module\callysto\Auth\Source\StandIn.state';
    public const AUTHID = '\SimpleSAML\Module\callysto\Auth\Source\StandIn.AuthId';

    /** @var string 'institution', 'google' or 'microsoft' */
    public $kind;

    /** @var string the institution IdP offered by default */
    public $institutionIdp;

    public function __construct($info, $config)
    {
        parent::__construct($info, $config);
        $kind = $config['kind'] ?? '';
        if (!in_array($kind, ['institution', 'google', 'microsoft'], true)) {
            throw new Error\Exception('callysto:StandIn: kind must be institution, google or microsoft');
        }
        $this->kind = $kind;
        $this->institutionIdp = $config['institution_idp'] ?? 'https://idp.example.org/idp/shibboleth';
    }

    public function authenticate(&$state)
    {
        $state[self::AUTHID] = $this->authId;
        // The language the student chose on the hub's page, which sends it as the RelayState.
        $state['callysto:language'] = (($state['saml:RelayState'] ?? '') === 'fr') ? 'fr' : '';
        $id = Auth\State::saveState($state, self::STAGEID);
        Utils\HTTP::redirectTrustedURL(Module::getModuleURL('callysto/signin.php'), ['AuthState' => $id]);
    }

    /** Whether ADDRESS looks like an e-mail address (the real sources check far more). */
    public static function isAddress(string $address): bool
    {
        return strlen($address) <= 254 && preg_match('/^[^@\s<>"]+@[^@\s<>"]+\.[^@\s<>"]+$/', $address) === 1;
    }

    /**
     * Completes the sign-in of ADDRESS as the real source would release it. Never returns.
     */
    public function signIn(array &$state, string $address, string $idp, string $accountId): void
    {
        switch ($this->kind) {
            case 'google':
                // authoauth2's Google source, configured without an attribute prefix.
                $state['Attributes'] = ['email' => [$address]];
                break;
            case 'microsoft':
                // authoauth2's Microsoft source: the Graph account id identifies the user.
                if ($accountId === '') {
                    $accountId = substr(hash('sha256', 'callysto-stand-in!' . strtolower($address)), 0, 16);
                }
                $state['Attributes'] = ['microsoft.id' => [$accountId], 'microsoft.mail' => [$address]];
                break;
            default:
                // A saml:SP source: the institution's IdP releases the address, and SmartID
                // appends the authenticating authority, as it does for any federated IdP.
                $state['Attributes'] = ['email' => [$address]];
                $state['saml:sp:IdP'] = $idp;
                $state['saml:sp:State'] = ['saml:AuthenticatingAuthority' => [$idp]];
        }
        Auth\Source::completeAuth($state);
    }
}
