<?php
// Runs SimpleSAMLphp's own core:TargetedID filter on JSON lines from stdin
// ({"salt", "idp", "sp", "uid"}) and prints one eduPersonTargetedID per line.
// The salt reaches the filter through SimpleSAMLphp's configuration, as on an IdP.
declare(strict_types=1);

require_once (getenv('SIMPLESAMLPHP_DIR') ?: '/usr/share/simplesamlphp') . '/lib/_autoload.php';

use SimpleSAML\Configuration;
use SimpleSAML\Module\core\Auth\Process\TargetedID;

while (($line = fgets(STDIN)) !== false) {
    $case = json_decode($line, true, 512, JSON_THROW_ON_ERROR);
    Configuration::loadFromArray(['secretsalt' => $case['salt']], '[ARRAY]', 'simplesaml');
    $config = [];
    $filter = new TargetedID($config, null);
    $state = [
        'Attributes' => [],
        'UserID' => $case['uid'],
        'Source' => ['metadata-set' => 'saml20-idp-hosted', 'entityid' => $case['idp']],
        'Destination' => ['metadata-set' => 'saml20-sp-remote', 'entityid' => $case['sp']],
    ];
    $filter->process($state);
    echo $state['Attributes']['eduPersonTargetedID'][0], "\n";
}
